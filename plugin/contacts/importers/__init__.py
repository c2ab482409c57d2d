"""Importers: turn a foreign contacts file into vCards, by content, never by file name.

``read(data, name, fmt)`` decodes the bytes, recognises the format (vCard
2.1/3.0/4.0, jCard, Google/Outlook/Thunderbird/LinkedIn/khard CSV, LDIF) and
returns a ``Parsed``: storable cards, problems with their line or row, and
groups (group cards and mailing lists, as category -> member UIDs). Writing
them into a book, with duplicate matching, is ``importers.apply``.
"""

from __future__ import annotations

from cardfile.plugin.contacts.importers.groups import split_groups
from cardfile.plugin.contacts.importers.model import CSV_FORMATS, Parsed, Problem, SourceCard
from cardfile.plugin.contacts.importers.text import decode, looks_binary
from cardfile.plugin.contacts.importers.vcard import read_vcards
from cardfile.plugin.refused import Refused

FORMATS = ("auto", "vcard", "jcard", *CSV_FORMATS, "csv", "ldif")

__all__ = ["FORMATS", "Refused", "Parsed", "Problem", "SourceCard", "detect", "read"]


def detect(text: str) -> str:
    """The format of ``text`` from its content: vcard, jcard, ldif or csv."""
    head = text.lstrip("\ufeff \t\r\n")[:4096]
    if _has_vcard_line(text):
        # Anywhere in the file: a .vcf with a damaged or chatty start is still a vCard
        # file, and read as CSV it would become contacts named "BEGIN:VCARD".
        return "vcard"
    if head[:1] in "[{" and '"vcard"' in head.replace(" ", "").lower():
        return "jcard"
    for line in head.splitlines():
        stripped = line.strip().lower()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith(("dn:", "dn::", "version: 1")):
            return "ldif"
        break
    return "csv"


def _has_vcard_line(text: str) -> bool:
    """A line that says BEGIN:VCARD (any case, spaces allowed), in the first megabyte."""
    for line in text[:1 << 20].splitlines():
        if len(line) < 40 and "".join(line.split()).upper() == "BEGIN:VCARD":
            return True
    return False


def read(data: bytes, name: str, fmt: str = "auto", encoding: str | None = None) -> Parsed:
    """Everything importable in one file (``name`` is used in problem reports)."""
    if fmt not in FORMATS:
        raise Refused(422, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not data.strip():
        raise Refused(422, f"{name} is empty")
    try:
        text, _ = decode(data, encoding)
    except LookupError:
        raise Refused(422, f"unknown encoding {encoding!r}") from None
    if looks_binary(text, guessed=encoding is None):
        raise Refused(422, f"{name} is not a text file (an image or an archive?); contacts "
                           "exports are vCard, jCard, CSV or LDIF text (a Cardfile backup "
                           "is brought back with 'cardfile restore')")
    kind = detect(text) if fmt == "auto" else fmt
    if kind == "vcard":
        parsed = read_vcards(text, name)
    # The other readers are imported here: every PUT's card check imports this
    # package (for vcard's repairs), and a server's start need not load CSV and LDIF.
    elif kind == "jcard":
        from cardfile.plugin.contacts.importers.jcard import read_jcards

        parsed = read_jcards(text, name)
    elif kind == "ldif":
        from cardfile.plugin.contacts.importers.ldif import read_ldif

        parsed = read_ldif(text, name)
    else:
        from cardfile.plugin.contacts.importers.csvfile import read_csv

        parsed = read_csv(text, name, kind)
    if not parsed.cards and not parsed.problems:
        # Said to a person at the command line and on the web page alike: no CLI flag.
        raise Refused(422, f"{name}: no contacts found (read as {parsed.format}); if this "
                           "is a contacts export, choose its format (vCard, jCard, CSV or "
                           "LDIF) instead of letting it be guessed")
    split_groups(parsed)
    return parsed
