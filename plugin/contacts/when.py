"""Reading a moment the way people say it: "Tuesday 14:00", "2 hours ago", an ISO time.

``restore-to`` takes one; a wrong guess would undo the wrong changes, so
anything this does not read exactly is refused with the forms it reads.
Times without a zone are local time (the machine's); a moment in the future
is refused.
"""

from __future__ import annotations

import datetime
import re

from cardfile.plugin.refused import Refused

FORMS = ("2024-05-14 14:00[:SS]", "2024-05-14T14:00:00+02:00 (ISO 8601, Z for UTC)",
         "14:00 (today)", "yesterday 14:00", "Tuesday 14:00 (the last one)",
         "90 minutes ago", "2 hours ago", "3 days ago")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600, "d": 86400, "day": 86400, "w": 604800, "week": 604800}
_AGO = re.compile(r"(\d{1,6})\s*([a-z]{1,7}?)s?(?:\s+ago)?")
_CLOCK = re.compile(r"([01]?\d|2[0-3])[:.h]([0-5]\d)(?::([0-5]\d))?")


class BadTime(Refused):
    """Not a moment this reads, or one in the future (a 422)."""

    def __init__(self, reason: str) -> None:
        super().__init__(422, reason)


def parse(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """The moment ``text`` names, as an aware datetime (see ``FORMS``)."""
    now = now or datetime.datetime.now().astimezone()
    value = " ".join(text.strip().lower().split())[:60]
    moment = _parse(value, now)
    if moment is None:
        raise BadTime(f"cannot read {text!r} as a time; use one of: {'; '.join(FORMS)}")
    if moment > now + datetime.timedelta(seconds=1):
        raise BadTime(f"{text!r} is in the future ({moment.isoformat(timespec='seconds')}); "
                      "give a time in the past")
    return moment


def _parse(value: str, now: datetime.datetime) -> datetime.datetime | None:
    if not value:
        return None
    relative = _AGO.fullmatch(value.removeprefix("-"))
    if relative and (value.endswith("ago") or value.startswith("-")):
        unit = _UNITS.get(relative.group(2))
        if unit is None:
            return None
        return now - datetime.timedelta(seconds=int(relative.group(1)) * unit)
    try:
        moment = datetime.datetime.fromisoformat(value.upper().replace(" ", "T", 1)
                                                 if re.match(r"\d{4}-", value) else "x")
    except ValueError:
        moment = None
    if moment is not None:
        return moment if moment.tzinfo else moment.astimezone()
    day_word, _, clock_text = value.partition(" ")
    clock = _CLOCK.fullmatch(clock_text) if clock_text else None
    if clock_text and clock is None:
        return None
    if not clock_text:
        clock = _CLOCK.fullmatch(value)
        if clock is not None:
            return _at(now.date(), clock, now)
        clock_time = None
    day: datetime.date
    if day_word == "today":
        day = now.date()
    elif day_word == "yesterday":
        day = now.date() - datetime.timedelta(days=1)
    elif day_word in _DAYS or any(day_word == d[:3] for d in _DAYS):
        wanted = next(i for i, d in enumerate(_DAYS) if d == day_word or d[:3] == day_word)
        back = (now.weekday() - wanted) % 7
        day = now.date() - datetime.timedelta(days=back)
        candidate = _at(day, clock, now) if clock else _midnight(day, now)
        if candidate > now:  # "Tuesday 14:00" said on Tuesday at noon: last week's
            day -= datetime.timedelta(days=7)
    else:
        return None
    clock_time = clock
    return _at(day, clock_time, now) if clock_time else _midnight(day, now)


def _at(day: datetime.date, clock: re.Match[str], now: datetime.datetime
        ) -> datetime.datetime:
    naive = datetime.datetime(day.year, day.month, day.day, int(clock.group(1)),
                              int(clock.group(2)), int(clock.group(3) or 0))
    return naive.astimezone()


def _midnight(day: datetime.date, now: datetime.datetime) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day).astimezone()


def to_ns(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000
