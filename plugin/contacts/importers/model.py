"""What every importer hands back: cards ready to store, and what it could not read.

Importers never write; they turn a foreign file into vCard texts (each with a
UID, so a second import of the same file finds the same cards) and a list of
problems that name the file, the line or row, and the reason. The caller
decides what to store, so ``--dry-run`` and the API share all of this.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

#: UIDs made for cards that have none are derived from their content with this
#: namespace, so importing the same file twice yields the same UIDs.
UID_NAMESPACE = uuid.UUID("6f1c3a52-9d8e-4b1a-9a57-0c2f4f1e8b11")
#: The CSV layouts ``csvfile`` reads (here, so naming the formats imports no reader).
CSV_FORMATS = ("google-csv", "outlook-csv", "thunderbird-csv", "linkedin-csv", "khard-csv")


@dataclass
class SourceCard:
    """One vCard (3.0 or 4.0 text, with UID) and where in the file it came from."""

    text: str
    origin: str
    #: Categories this card gets from groups/lists in the same file (names as given).
    categories: list[str] = field(default_factory=list)


@dataclass
class Problem:
    """A card or row that was skipped (``skipped``) or repaired (not skipped)."""

    origin: str
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        return f"{self.origin}: {self.reason}"


@dataclass
class Parsed:
    """An importer's result for one file."""

    format: str
    cards: list[SourceCard] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Group cards / mailing lists: category name -> member UIDs ("urn:uuid:" removed).
    groups: dict[str, list[str]] = field(default_factory=dict)


def stable_uid(*parts: str) -> str:
    """A UID that is the same every time the same content is imported."""
    return str(uuid.uuid5(UID_NAMESPACE, "\x1f".join(parts)))
