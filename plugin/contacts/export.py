"""Write contacts out: vCard 3.0 or 4.0, jCard (RFC 7095) and CSV.

Cards are stored as their clients sent them (3.0 or 4.0, any mix), but the
programs that read an export each expect one version: Apple and Google read
3.0 (photos as ``ENCODING=b``), 4.0 readers want ``data:`` URIs, ``PREF=1``
and ``KIND``/``MEMBER``. Conversion works on content lines so everything it
does not know (X- properties, groups like ``item1.``, parameters) passes
through unchanged. Lines are folded at 75 octets without splitting a UTF-8
character, as RFC 6350 section 3.2 asks.

Lines are written with card_fields' one writer (``format_line``, ``fold``,
``card_text``), the one the importers, the merger and category edits use.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from cardfile.plugin.vcard.card_fields import (  # noqa: F401  (the writer, re-exported)
    ContentLine,
    card_text,
    decode_value,
    escape_text,
    fold,
    format_line,
    parse_lines,
    split_escaped,
    unescape,
)

FORMATS = ("vcard3", "vcard4", "jcard", "csv")
MEDIA_PROPERTIES = frozenset({"PHOTO", "LOGO", "SOUND", "KEY"})
_IMAGE_TYPES = {"JPEG": "image/jpeg", "JPG": "image/jpeg", "PNG": "image/png",
                "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp",
                "TIFF": "image/tiff"}
# The parameters' text is possessive: a value cannot give back characters to the loop.
_DATA_URI = re.compile(r"^data:([^;,]*+)((?:;[^;,]*+)*?);base64,(.*)$", re.S | re.I)


def version_of(lines: list[ContentLine]) -> str:
    for line in lines:
        if line.name == "VERSION":
            return line.value.strip()
    return "3.0"


# -- version conversion ----------------------------------------------------------
def convert(text: str, version: str) -> str:
    """The card in ``text`` written as vCard ``version`` ("3.0" or "4.0")."""
    lines = parse_lines(text)
    return card_text(version, convert_lines(lines, version_of(lines), version))


def convert_lines(lines: list[ContentLine], source: str, target: str,
                  fill_required: bool = True) -> list[ContentLine]:
    """Content lines of a ``source``-version card, as a ``target``-version card holds them.

    ``fill_required`` adds the N (3.0) and FN a standalone card needs; the
    merger turns it off, since it adds lines to a card that has them already.
    """
    out: list[ContentLine] = []
    for line in lines:
        if line.name == "VERSION":
            continue
        line = ContentLine(line.group, line.name, {k: list(v) for k, v in line.params.items()},
                           line.value)
        _decode_qp(line)
        if line.name in MEDIA_PROPERTIES and line.value.lower().startswith("data:"):
            line.value = re.sub(r"\\(.)", r"\1", line.value)  # a URI has no escapes
        if target == "4.0":
            out.extend(_to_v4(line))
        else:
            out.extend(_to_v3(line))
    if not fill_required:
        return out
    if target == "3.0" and not any(line.name == "N" for line in out):
        out.append(ContentLine("", "N", {}, _n_from_fn(out)))
    if not any(line.name == "FN" for line in out):
        out.append(ContentLine("", "FN", {}, ""))
    return out


def _decode_qp(line: ContentLine) -> None:
    if not line.params:  # most lines: nothing to look at
        return
    encodings = {e.upper() for e in line.params.get("ENCODING", [])}
    types = {t.upper() for t in line.params.get("TYPE", [])}
    if "QUOTED-PRINTABLE" in encodings | types:
        decoded = decode_value(line)
        line.value = decoded.replace("\r\n", "\\n").replace("\n", "\\n")
        line.params.pop("ENCODING", None)
        line.params.pop("CHARSET", None)
        _drop_type(line, "QUOTED-PRINTABLE")


def _drop_type(line: ContentLine, *names: str) -> None:
    if "TYPE" in line.params:
        kept = [t for t in line.params["TYPE"] if t.upper() not in names]
        if kept:
            line.params["TYPE"] = kept
        else:
            del line.params["TYPE"]


def _to_v4(line: ContentLine) -> list[ContentLine]:
    if line.name == "X-ADDRESSBOOKSERVER-KIND":
        return [ContentLine(line.group, "KIND", {}, line.value.strip().lower())]
    if line.name == "X-ADDRESSBOOKSERVER-MEMBER":
        return [ContentLine(line.group, "MEMBER", {}, line.value.strip())]
    if line.name in MEDIA_PROPERTIES and _is_inline_base64(line):
        mime = _media_type(line)
        data = re.sub(r"\s+", "", line.value)
        return [ContentLine(line.group, line.name, _without(line.params, "ENCODING", "TYPE"),
                            f"data:{mime};base64,{data}")]
    types = [t for t in line.params.get("TYPE", []) if t.upper() == "PREF"]
    if types:
        _drop_type(line, "PREF")
        line.params.setdefault("PREF", ["1"])
    line.params.pop("CHARSET", None)
    return [line]


def _to_v3(line: ContentLine) -> list[ContentLine]:
    if line.name == "KIND":
        return [ContentLine(line.group, "X-ADDRESSBOOKSERVER-KIND", {}, line.value.strip())]
    if line.name == "MEMBER":
        return [ContentLine(line.group, "X-ADDRESSBOOKSERVER-MEMBER", {}, line.value.strip())]
    if line.name in MEDIA_PROPERTIES:
        match = _DATA_URI.match(line.value.strip())
        if match:
            params = _without(line.params, "VALUE", "MEDIATYPE")
            subtype = match.group(1).split("/")[-1].upper() or "JPEG"
            params["ENCODING"] = ["b"]
            params["TYPE"] = [subtype]
            return [ContentLine(line.group, line.name, params, match.group(3).strip())]
    if "PREF" in line.params:
        del line.params["PREF"]
        line.params.setdefault("TYPE", []).append("pref")
    if line.name == "TEL" and line.value.lower().startswith("tel:"):
        line.params = _without(line.params, "VALUE")
        line.value = line.value[4:]
    return [line]


def _without(params: dict[str, list[str]], *keys: str) -> dict[str, list[str]]:
    return {k: v for k, v in params.items() if k not in keys}


def _is_inline_base64(line: ContentLine) -> bool:
    encodings = {e.upper() for e in line.params.get("ENCODING", [])}
    types = {t.upper() for t in line.params.get("TYPE", [])}
    return bool(encodings & {"B", "BASE64"}) or "BASE64" in types


def _media_type(line: ContentLine) -> str:
    for value in line.params.get("TYPE", []) + line.params.get("MEDIATYPE", []):
        if "/" in value:
            return value.lower()
        if value.upper() in _IMAGE_TYPES:
            return _IMAGE_TYPES[value.upper()]
    return sniff_media_type(line.value) or "application/octet-stream"


def sniff_media_type(b64: str) -> str | None:
    """The image type of base64 data, from its first bytes."""
    head = re.sub(r"\s+", "", b64[:64])
    head = head[: len(head) // 4 * 4]
    try:
        raw = base64.b64decode(head)
    except (binascii.Error, ValueError):
        return None
    if raw.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if raw.startswith(b"\x89PNG"):
        return "image/png"
    if raw.startswith(b"GIF8"):
        return "image/gif"
    if raw.startswith(b"RIFF") and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def _n_from_fn(lines: list[ContentLine]) -> str:
    """vCard 3.0 requires N: derive it from FN (family name last) when missing."""
    fn = next((unescape(line.value) for line in lines if line.name == "FN"), "").strip()
    kind = next((line.value.lower() for line in lines
                 if line.name == "X-ADDRESSBOOKSERVER-KIND"), "")
    words = fn.split()
    if len(words) < 2 or kind in ("org", "group"):
        return f"{escape_text(fn)};;;;"
    return f"{escape_text(words[-1])};{escape_text(' '.join(words[:-1]))};;;"


# -- jCard -------------------------------------------------------------------------
_JCARD_TYPES = {"BDAY": "date-and-or-time", "ANNIVERSARY": "date-and-or-time",
                "REV": "timestamp", "URL": "uri", "PHOTO": "uri", "LOGO": "uri",
                "SOUND": "uri", "KEY": "uri", "MEMBER": "uri", "SOURCE": "uri",
                "IMPP": "uri", "GEO": "uri", "FBURL": "uri", "CALURI": "uri",
                "CALADRURI": "uri", "RELATED": "uri", "UID": "text"}
_STRUCTURED = frozenset({"N", "ADR", "ORG", "GENDER", "CLIENTPIDMAP"})
_LISTS = frozenset({"CATEGORIES", "NICKNAME"})


def to_jcard(text: str) -> list[Any]:
    """One card as a jCard array (RFC 7095), from its vCard 4.0 form."""
    lines = parse_lines(convert(text, "4.0"))
    props: list[Any] = [["version", {}, "text", "4.0"]]
    for line in lines:
        if line.name == "VERSION":
            continue
        params: dict[str, Any] = {}
        if line.group:
            params["group"] = line.group
        for key, values in line.params.items():
            if key == "VALUE":
                continue
            params[key.lower()] = values[0] if len(values) == 1 else values
        value_type = (line.params.get("VALUE") or [""])[0].lower() or _JCARD_TYPES.get(
            line.name, "unknown" if line.name.startswith("X-") else "text")
        if line.name == "TEL":
            value_type = "uri" if line.value.lower().startswith("tel:") else "text"
        entry: list[Any] = [line.name.lower(), params, value_type]
        if value_type == "uri":
            entry.append(line.value)
        elif line.name in _STRUCTURED:
            parts = split_escaped(line.value, ";")
            entry.append(parts)
        elif line.name in _LISTS:
            entry.extend(split_escaped(line.value, ","))
        else:
            entry.append(unescape(line.value))
        props.append(entry)
    return ["vcard", props]


# -- CSV (Google Contacts layout, which Google, Outlook.com and Apple import) -----------
CSV_COLUMNS = ["Name", "Given Name", "Additional Name", "Family Name", "Name Prefix",
               "Name Suffix", "Nickname", "Birthday", "Notes", "Labels",
               "E-mail 1 - Type", "E-mail 1 - Value", "E-mail 2 - Type", "E-mail 2 - Value",
               "E-mail 3 - Type", "E-mail 3 - Value",
               "Phone 1 - Type", "Phone 1 - Value", "Phone 2 - Type", "Phone 2 - Value",
               "Phone 3 - Type", "Phone 3 - Value",
               "Address 1 - Type", "Address 1 - Formatted", "Address 1 - Street",
               "Address 1 - City", "Address 1 - PO Box", "Address 1 - Region",
               "Address 1 - Postal Code", "Address 1 - Country", "Address 1 - Extended Address",
               "Organization 1 - Name", "Organization 1 - Title",
               "Organization 1 - Department", "Website 1 - Type", "Website 1 - Value",
               "UID"]


def to_csv_rows(texts: Iterable[str]) -> str:
    """Cards as Google-style CSV; multiple values of one slot joined by `` ::: ``."""
    return "".join(_csv_parts(texts))


def _csv_parts(texts: Iterable[str]) -> Iterator[str]:
    """``to_csv_rows``: the header, then each card's row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for text in texts:
        writer.writerow(_csv_row(parse_lines(text)))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()


def _csv_row(lines: list[ContentLine]) -> dict[str, str]:
    row: dict[str, str] = {}
    slots: dict[str, list[tuple[str, str]]] = {"EMAIL": [], "TEL": [], "ADR": [], "URL": []}
    for line in lines:
        _decode_qp(line)
        value = line.value
        if line.name == "FN":
            row["Name"] = unescape(value)
        elif line.name == "N":
            parts = (split_escaped(value, ";") + [""] * 5)[:5]
            (row["Family Name"], row["Given Name"], row["Additional Name"],
             row["Name Prefix"], row["Name Suffix"]) = parts
        elif line.name == "NICKNAME":
            row["Nickname"] = unescape(value)
        elif line.name == "BDAY":
            row["Birthday"] = value.strip()
        elif line.name == "NOTE":
            row["Notes"] = unescape(value)
        elif line.name == "CATEGORIES":
            row["Labels"] = " ::: ".join(v.strip() for v in split_escaped(value, ",") if v.strip())
        elif line.name == "ORG":
            parts = split_escaped(value, ";")
            row["Organization 1 - Name"] = parts[0]
            row["Organization 1 - Department"] = ";".join(parts[1:])
        elif line.name == "TITLE":
            row["Organization 1 - Title"] = unescape(value)
        elif line.name == "UID":
            row["UID"] = value.strip()
        elif line.name in slots:
            label = ",".join(t.lower() for t in line.params.get("TYPE", [])
                             if t.upper() not in ("INTERNET", "PREF", "VOICE"))
            if line.name == "TEL" and value.lower().startswith("tel:"):
                value = value[4:]
            slots[line.name].append((label, unescape(value) if line.name == "URL" else value))
    for i, (label, value) in enumerate(slots["EMAIL"][:3], 1):
        row[f"E-mail {i} - Type"], row[f"E-mail {i} - Value"] = label, value.strip()
    for i, (label, value) in enumerate(slots["TEL"][:3], 1):
        row[f"Phone {i} - Type"], row[f"Phone {i} - Value"] = label, unescape(value).strip()
    if slots["ADR"]:
        label, value = slots["ADR"][0]
        parts = (split_escaped(value, ";") + [""] * 7)[:7]
        row["Address 1 - Type"] = label
        (row["Address 1 - PO Box"], row["Address 1 - Extended Address"],
         row["Address 1 - Street"], row["Address 1 - City"], row["Address 1 - Region"],
         row["Address 1 - Postal Code"], row["Address 1 - Country"]) = parts
    if slots["URL"]:
        row["Website 1 - Type"], row["Website 1 - Value"] = slots["URL"][0]
    return row


# -- whole exports ---------------------------------------------------------------
def export_cards(texts: Iterable[str], fmt: str) -> str:
    """The export file for ``texts`` (stored card texts) in ``fmt`` (one of FORMATS)."""
    return "".join(export_parts(texts, fmt))


def export_parts(texts: Iterable[str], fmt: str) -> Iterator[str]:
    """``export_cards`` piece by piece, a card at a time: an export of 100,000
    cards need not hold them all, nor the file, at once."""
    if fmt == "vcard3":
        return (convert(t, "3.0") for t in texts)
    if fmt == "vcard4":
        return (convert(t, "4.0") for t in texts)
    if fmt == "jcard":
        return _jcard_parts(texts)
    if fmt == "csv":
        return _csv_parts(texts)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def _jcard_parts(texts: Iterable[str]) -> Iterator[str]:
    """``json.dumps(cards, ensure_ascii=False, indent=1) + "\\n"``, a card at a time
    (each card's own lines indented one more, as inside the array)."""
    count = 0
    for text in texts:
        card = json.dumps(to_jcard(text), ensure_ascii=False, indent=1).replace("\n", "\n ")
        yield ("[\n " if count == 0 else ",\n ") + card
        count += 1
    yield "\n]\n" if count else "[]\n"


# -- a plain summary for people and scripts (contacts show --format json, list --json) ---
def summary(text: str) -> dict[str, Any]:
    """The fields people look at, as plain JSON values (the card itself stays the truth)."""
    out: dict[str, Any] = {"uid": "", "fn": "", "n": {}, "emails": [], "phones": [],
                           "addresses": [], "categories": [], "org": "", "title": "",
                           "nickname": "", "bday": "", "note": "", "urls": []}
    for line in parse_lines(text):
        _decode_qp(line)
        types = [t.lower() for t in line.params.get("TYPE", ())] if line.params else []
        if line.name == "UID":
            out["uid"] = line.value.strip()
        elif line.name == "FN" and not out["fn"]:
            out["fn"] = unescape(line.value)
        elif line.name == "N" and not out["n"]:
            parts = (split_escaped(line.value, ";") + [""] * 5)[:5]
            out["n"] = dict(zip(("family", "given", "additional", "prefix", "suffix"), parts,
                                strict=True))
        elif line.name == "EMAIL":
            out["emails"].append({"value": unescape(line.value).strip(), "types": types})
        elif line.name == "TEL":
            value = unescape(line.value).strip()
            out["phones"].append({"value": value[4:] if value.lower().startswith("tel:")
                                  else value, "types": types})
        elif line.name == "ADR":
            parts = (split_escaped(line.value, ";") + [""] * 7)[:7]
            out["addresses"].append(dict(zip(("box", "extended", "street", "city", "region",
                                              "code", "country"), parts, strict=True))
                                    | {"types": types})
        elif line.name == "CATEGORIES":
            out["categories"] += [c.strip() for c in split_escaped(line.value, ",") if c.strip()]
        elif line.name == "ORG" and not out["org"]:
            out["org"] = " ".join(p for p in split_escaped(line.value, ";") if p)
        elif line.name in ("TITLE", "NICKNAME", "BDAY", "NOTE") and not out[line.name.lower()]:
            out[line.name.lower()] = unescape(line.value)
        elif line.name == "URL":
            out["urls"].append(unescape(line.value).strip())  # Apple writes https\://
    return out
