"""A card as logical lines, each kept byte for byte: the one way a stored card is edited.

Edits (a JSON PATCH from the API or the page, a category rename over many
cards, a UID added) must change only the lines they mean to change. Re-
serialising through vobject would reorder and re-escape every line and lose
Apple's ``item1.`` groups, folds and unknown properties. So a card is split
once into logical lines (a property with its folds and its own line ending),
each parsed with ``card_fields`` (the one reader), and an edit swaps whole
logical lines written by ``card_fields`` (the one writer).
"""

from __future__ import annotations

import re

from cardfile.plugin.vcard import card_fields
from cardfile.plugin.vcard.card_fields import ContentLine

#: One physical line with its own ending (CRLF, LF, CR, or Outlook's CR CR LF).
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\r\n|\r\n|\n|\r|$)")


class CardText:
    """A card as logical lines (each with its folds and line ending)."""

    def __init__(self, text: str) -> None:
        self.raw: list[str] = []
        self.parsed: list[ContentLine | None] = []
        self.newline = "\r\n"
        self.v4 = False
        self._load(text)

    def _load(self, text: str) -> None:
        self.raw = []
        for physical in (m.group(0) for m in _PHYSICAL_LINE.finditer(text) if m.group(0)):
            if self.raw and (physical[:1] in (" ", "\t") or _soft_break(self.raw[-1])):
                self.raw[-1] += physical
            else:
                self.raw.append(physical)
        first = self.raw[0] if self.raw else ""
        self.newline = next((n for n in ("\r\n", "\n", "\r") if first.endswith(n)), "\r\n")
        self.parsed = [self._parse(r) for r in self.raw]
        version = next((p.value.strip() for p in self.parsed if p and p.name == "VERSION"), "")
        self.v4 = version.startswith("4")

    @staticmethod
    def _parse(raw: str) -> ContentLine | None:
        unfolded = "".join(card_fields.unfold(raw))
        if unfolded.upper() in ("BEGIN:VCARD", "END:VCARD"):
            return None
        try:
            return card_fields.parse_line(unfolded)
        except card_fields.CardSyntaxError:
            return None

    def text(self) -> str:
        return "".join(self.raw)

    def lines(self, *names: str) -> list[tuple[int, ContentLine]]:
        """The lines of any of the properties ``names``, in card order."""
        return [(i, p) for i, p in enumerate(self.parsed) if p is not None and p.name in names]

    def line(self, content: str) -> str:
        return card_fields.fold(content).replace("\r\n", self.newline)

    def replace(self, name: str, new_raw: list[str], also_drop: set[int] | None = None) -> None:
        """Put ``new_raw`` where the first ``name`` line was; drop the other ones
        (and the lines at ``also_drop``).

        Apple's ``itemN.X-ABLabel`` companions of a dropped grouped line go
        with it, unless another line of that group stays.
        """
        old = self.lines(name)
        self.place(name, {old[0][0] if old else self._end(): new_raw}, also_drop)

    def place(self, name: str | tuple[str, ...], slots: dict[int, list[str]],
              also_drop: set[int] | None = None) -> None:
        """Drop every ``name`` line (of every name in a tuple); put ``slots[i]`` where
        line ``i`` was (an entry rewritten in place stays where it was, beside its
        Apple label)."""
        old = self.lines(*((name,) if isinstance(name, str) else name))
        dropped = {i for i, _ in old} | (also_drop or set())
        new_raw = [raw for lines in slots.values() for raw in lines]
        kept_raw = set(new_raw)
        groups = {p.group.lower() for i, p in old if p.group and self.raw[i] not in kept_raw}
        out: list[str] = []
        for i, raw in enumerate(self.raw):
            out.extend(slots.get(i, []))
            if i in dropped:
                continue
            p = self.parsed[i]
            if (p is not None and p.group.lower() in groups and p.name.startswith("X-AB")
                    and not any(r.lower().startswith(p.group.lower() + ".") for r in new_raw)):
                continue
            out.append(raw)
        self._load("".join(out))

    def end(self) -> int:
        """The index of the END:VCARD line."""
        return self._end()

    def _end(self) -> int:
        return max(i for i, raw in enumerate(self.raw) if raw.strip().upper() == "END:VCARD")


def _soft_break(logical: str) -> bool:
    """vCard 2.1 quoted-printable: a value ending in ``=`` goes on on the next line."""
    for ending in ("\r\r\n", "\r\n", "\n", "\r"):  # its own line ending, only one
        if logical.endswith(ending):
            logical = logical[: -len(ending)]
            break
    return card_fields.is_quoted_printable(logical) and logical.endswith("=")
