"""Sources that are files: a vCard or CSV file at an http(s) URL, a local folder.

Both are read whole every time (a conditional GET saves the download when the
file did not change) with the project's importers, so a CSV from Google or
Outlook reads exactly as ``cardfile import`` reads it. Each card's key is its
UID (importers give every card one, stable for the same content), and its
ETag is the hash of its text, so only cards that changed are written.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from cardfile.plugin.contacts import importers
from cardfile.plugin.contacts.sources.fetch import (
    BAD_ANSWER,
    NETWORK,
    Client,
    SourceFailure,
    check,
    display_url,
)
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard import card_edit, card_fields

#: A folder source reads at most this many files (a vdir has one card per file).
MAX_FILES = 100_000


@dataclass
class Snapshot:
    """Every card a file source holds now (``None`` from ``pull_url``: unchanged)."""

    cards: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (etag, text)
    problems: list[str] = field(default_factory=list)
    validators: dict[str, str] = field(default_factory=dict)  # ETag / Last-Modified


def text_etag(text: str) -> str:
    return '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + '"'


def pull_url(client: Client, url: str, validators: dict[str, str]) -> Snapshot | None:
    headers = {}
    if validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators.get("last-modified"):
        headers["If-Modified-Since"] = validators["last-modified"]
    response = client.request("GET", url, headers=headers)
    if response.status == 304:
        return None
    check(response, f"GET {display_url(url)}")
    snapshot = Snapshot(validators={k: response.headers[k] for k in ("etag", "last-modified")
                                    if k in response.headers})
    _read_into(snapshot, response.body, display_url(url), client.limits.max_cards)
    return snapshot


def pull_folder(folder: str, max_cards: int) -> Snapshot:
    if not os.path.isdir(folder):
        raise SourceFailure(NETWORK, f"the folder {folder} is not there (a disk not "
                                     "mounted?); trying again later")
    snapshot = Snapshot()
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries
                           if e.is_file() and e.name.lower().endswith((".vcf", ".vcard"))
                           and not e.name.startswith("."))
    except OSError as e:
        raise SourceFailure(NETWORK, f"cannot read the folder {folder}: {e.strerror}") from None
    if len(names) > MAX_FILES:
        raise SourceFailure(BAD_ANSWER, f"the folder holds more than {MAX_FILES} card files",
                            413)
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                data = f.read(50 * 1024 * 1024 + 1)
        except OSError as e:
            snapshot.problems.append(f"{name}: cannot be read ({e.strerror})")
            continue
        _read_into(snapshot, data, name, max_cards)
    return snapshot


def _read_into(snapshot: Snapshot, data: bytes, name: str, max_cards: int) -> None:
    try:
        parsed = importers.read(data, name)
    except Refused as e:
        if not snapshot.cards and name.startswith("http"):
            raise SourceFailure(BAD_ANSWER, f"the file cannot be read as contacts: "
                                            f"{e.reason}; nothing was changed") from None
        snapshot.problems.append(f"{name}: {e.reason}")
        return
    snapshot.problems += [str(p) for p in parsed.problems if p.skipped]
    for card in parsed.cards:
        text = card.text
        try:
            if card.categories:
                text = card_edit.add_categories(text, card.categories)
            uid = card_fields.uid_of(card_fields.parse_lines(text))
        except card_fields.CardSyntaxError as e:
            snapshot.problems.append(f"{card.origin}: {e}")
            continue
        snapshot.cards[uid] = (text_etag(text), text)
        if len(snapshot.cards) > max_cards:
            raise SourceFailure(BAD_ANSWER, f"the source holds more than {max_cards} cards, "
                                            "more than a source may hold here; nothing was "
                                            "changed", 413)
