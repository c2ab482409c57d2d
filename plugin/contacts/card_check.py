"""Check an uploaded card before it reaches Radicale, and say what is wrong.

Radicale refuses a bad card with a bare "Bad Request". A phone user needs to
know which card, which line and why, so the same parse Radicale will do
(``radicale.item.read_components``, with the fidelity fixes installed) is run
first here and its failure turned into a sentence. Only bodies that are meant
to be vCards are checked; anything else is Radicale's to judge.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts.categories import is_group_card
from cardfile.plugin.contacts.importers.vcard import repair_card
from cardfile.plugin.contacts.sent_card import SentCard
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard import card_fields

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: After each line end: the text's physical lines, each with its own end.
_LINE_ENDS = re.compile(r"(?<=\n)")
_VCARD_TYPES = ("text/vcard", "text/x-vcard", "text/directory")


def _looks_like_vcard(environ: dict[str, Any], body: bytes) -> bool:
    content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type in _VCARD_TYPES:
        return True
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    return head.startswith(b"BEGIN:VCARD")


def _refuse_non_card(body: bytes) -> None:
    """Refuse a body that is neither a vCard nor an iCalendar object (415).

    Radicale would refuse it too, but with a parser message ("Failed to parse
    line") that points nowhere. iCalendar bodies are left to Radicale: a user
    may keep a calendar beside the address books, and for an address book
    Radicale already says the item type is not supported there. One prefix
    test, so a normal PUT costs nothing more.
    """
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    if head.startswith(b"BEGIN:VCALENDAR"):
        return
    start = body[:24].decode("utf-8", "replace")
    shown = "".join(ch if ch.isprintable() else "?" for ch in start)
    raise Refused(415, f"The body is not a vCard (it starts with {shown!r}, not "
                            "BEGIN:VCARD); an address book stores only vCards (text/vcard)")


def accept_card_upload(environ: dict[str, Any], body: bytes, max_resource_size: int
                       ) -> SentCard | None:
    """The card to store for this CardDAV PUT body (``accept_card``), or ``Refused``.

    None: not a card upload (a collection, an iCalendar object).
    """
    path = environ.get("PATH_INFO", "")
    if path.endswith("/"):
        return None
    if not _looks_like_vcard(environ, body):
        _refuse_non_card(body)
        return None
    _check_utf8(body)
    return accept_card(body.decode("utf-8"), path.rsplit("/", 1)[-1], max_resource_size)


def accept_card(text: str, name: str, max_resource_size: int) -> SentCard:
    """The card to store for ``text`` sent as ``name``, repaired if it must be, or ``Refused``.

    Every way in passes here (a CardDAV PUT, the API, imports, merges,
    category edits through ``model.AddressBook.put``), so every client's card
    is judged and repaired by the same rules. A card that reads as a vCard is
    kept byte for byte. One that real clients write but strict parsing
    refuses (no VERSION, no FN, 2.1 leftovers, lax parameters) is repaired
    the way ``cardfile import`` repairs it, and the repair is recorded so a
    PUT answer carries no ETag. Only text that cannot be read as one card is
    refused, with the line and the reason. ``name`` (the file name, may be
    empty) gives a card without UID a stable one.
    """
    size = len(text.encode("utf-8"))
    if max_resource_size and size > max_resource_size:
        raise Refused(413, f"This contact is {size} bytes; one contact may be at most "
                           f"{max_resource_size} bytes (max_resource_size). Use a smaller "
                           "photo.")
    changes: list[str] = []
    if text.startswith("\ufeff"):
        # As a Windows editor saves a file. Radicale's parser reads it as part of
        # BEGIN:VCARD (a PUT was refused), and a card file is served without it.
        text = text[1:]
        changes.append("the byte order mark before BEGIN:VCARD was removed")
    if _CONTROL.search(text):
        # Legal in no vCard value, and they would make every multiget answer invalid XML.
        text = _CONTROL.sub("", text)
        changes.append("control characters were removed")
    if "\ufffe" in text or "\uffff" in text:
        # Unicode's two noncharacters XML cannot carry: a multiget would send the card
        # without them (vcard/xml_chars.py), so the client is told now, not surprised then.
        text = text.replace("\ufffe", "").replace("\uffff", "")
        changes.append("the noncharacters U+FFFE and U+FFFF were removed")
    if "\r" in text.replace("\r\n", ""):
        # A lone CR: a classic Mac file's line ends, or (Thunderbird) a line break inside
        # a value, which every line-based reader would take for the end of the line.
        text = _without_lone_cr(text)
        changes.append("line breaks inside values were written as \\n")
    if not _has_uid_line(text):
        text = _with_uid(text, _uid_from_name(name))
        changes.append("the card had no UID; its file name became its UID")
    try:
        card = parse_single_card(text)
        sent = SentCard(text, card_uid(card), changes)
    except Refused as refused:
        if refused.status != 400 or text.upper().count("BEGIN:VCARD") != 1:
            raise
        repaired, notes = repair_card(text, name)
        if repaired is None:
            raise
        try:
            card = parse_single_card(repaired)
        except Refused:
            raise refused from None
        sent = SentCard(repaired, card_uid(card), changes + (notes or ["the card was repaired"]))
    sent.component = card
    try:
        lines = card_fields.parse_lines(sent.text)  # what the index and the API will read
        sent = _with_one_uid(sent, card_fields.uid_of(lines))
        if sent.component is not card:
            lines = card_fields.parse_lines(sent.text)
        sent.is_group_card = is_group_card(lines)
    except card_fields.CardSyntaxError as e:
        raise Refused(400, f"The card could not be read as a vCard: {e}") from None
    return sent


def _with_one_uid(sent: SentCard, uid: str) -> SentCard:
    """``sent`` with its UID written so that every reader reads ``uid`` (the index's reading).

    Radicale (through vobject) keeps the spaces around a UID and the backslash of
    an escape vCard does not define (``tw\\in``); the index, the API and the
    CLI read ``twin``. Read two ways, one UID let a second card in beside the
    first (Radicale's clash check looked for `` twin``, the index had ``twin``),
    and a client could never update its own card (the stored card's UID never
    equalled the one it sent). The UID line is written again, recorded as a
    change (no ETag in the PUT's answer), and the rest of the card kept as sent.
    """
    if not uid:
        raise Refused(400, "The card's UID is empty once read; every contact needs a "
                           "unique UID (RFC 6352, section 5.1)")
    if str(sent.component.uid.value) == uid:
        return sent
    rewritten = _uid_line_written(sent.text, uid)
    if rewritten is None:
        return sent
    card = parse_single_card(rewritten)
    if str(card.uid.value) != uid:
        return sent  # (no better writing of it found: kept as sent)
    again = SentCard(rewritten, card_uid(card), sent.changes + [
        f"the UID {str(sent.component.uid.value)!r} was written as {uid!r}, the one way "
        "every reader reads it"])
    again.component = card
    return again


def _uid_line_written(text: str, uid: str) -> str | None:
    """``text`` with its first UID line's value replaced by ``uid`` (escaped), folded
    continuation lines included; None when no UID line is found."""
    physical = _LINE_ENDS.split(text)
    for i, line in enumerate(physical):
        if line[:1] in (" ", "\t"):
            continue
        name = line.split(":", 1)[0].split(";", 1)[0].rsplit(".", 1)[-1]
        if name.strip().upper() != "UID" or ":" not in line:
            continue
        end = i + 1
        while end < len(physical) and physical[end][:1] in (" ", "\t"):
            end += 1
        last = physical[end - 1]
        newline = last[len(last.rstrip("\r\n")):] or "\r\n"
        head = line.split(":", 1)[0]
        return "".join(physical[:i] + [f"{head}:{card_fields.escape_text(uid)}{newline}"]
                       + physical[end:])
    return None


def card_uid(card: Any) -> str:
    """The UID of a parsed card (a vobject component), trimmed: the one way it is read."""
    return str(card.uid.value).strip()


def _without_lone_cr(text: str) -> str:
    if "\n" not in text:
        return text.replace("\r", "\r\n")
    return "\r\n".join(part.replace("\r", "\\n") for part in text.split("\r\n"))


def _has_uid_line(text: str) -> bool:
    for line in text.splitlines():
        name = line.split(":", 1)[0].split(";", 1)[0].rsplit(".", 1)[-1]
        if name.strip().upper() == "UID" and not line[:1].isspace():
            return True
    return False


def _uid_from_name(name: str) -> str:
    """The card's file name without ``.vcf``: stable, so a second PUT replaces the first."""
    stem = name[:-4] if name.lower().endswith(".vcf") else name
    stem = "".join(ch for ch in stem if ch.isprintable() and ch not in ",;:\\")
    return stem or str(uuid.uuid4())


def _with_uid(text: str, uid: str) -> str:
    """``text`` with a UID line after BEGIN:VCARD, in the card's own line ending."""
    newline = "\r\n" if "\r\n" in text else "\n"
    head, sep, rest = text.partition(newline)
    if head.strip().upper() != "BEGIN:VCARD" or not sep:
        return text
    return f"{head}{newline}UID:{uid}{newline}{rest}"


def _check_utf8(body: bytes) -> None:
    """Raise ``Refused`` if ``body`` is not UTF-8 text, saying where it stops being so."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as e:
        line = body[: e.start].count(b"\n") + 1
        raise Refused(400, f"The card is not valid UTF-8 text (line {line}, byte "
                           f"{e.start}); save it as UTF-8 and upload again") from None


def parse_single_card(text: str) -> Any:
    """The one vCard in ``text`` as a vobject component, or ``Refused``.

    The same parse Radicale does on PUT, so what passes here is stored.
    """
    try:
        components = radicale.read_components(text)
    except Exception as e:  # vobject raises many kinds; all mean "not a vCard"
        raise Refused(400, f"The card could not be read as a vCard: {_one_line(e)}"
                           ) from None
    if len(components) != 1:
        raise Refused(400, f"A contact must be uploaded as exactly one vCard; this body "
                                f"holds {len(components)}. Upload each card to its own URL.")
    card = components[0]
    if card.name != "VCARD":
        raise Refused(415, f"This is a {card.name}, not a vCard; an address book only "
                                "stores vCards")
    uid = card.uid.value if hasattr(card, "uid") else ""
    if not str(uid or "").strip():
        raise Refused(400, "The card has no UID property; every contact needs a unique "
                                "UID (RFC 6352, section 5.1)")
    try:
        card.validate(raiseException=True)
    except Exception as e:  # the same check Radicale's store step would fail on
        raise Refused(400, f"The card is not a valid vCard: {_one_line(e)}") from None
    return card


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    text = re.sub(r"\s+", " ", text)
    return (text[:240] + "...") if len(text) > 240 else (text or type(error).__name__)
