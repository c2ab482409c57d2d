"""Turn a file's bytes into text, whatever encoding the exporting program chose.

Exports come as UTF-8 with or without BOM, UTF-16 (Outlook, Thunderbird on
Windows), cp1252 (older Outlook), Shift_JIS and others. A BOM or NUL bytes
decide UTF-16; valid UTF-8 is taken as UTF-8; anything else is measured by
``charset-normalizer`` with cp1252 as the fallback Windows exporters imply.
"""

from __future__ import annotations

import codecs
import re


def decode(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """(text, encoding used) for ``data``; ``declared`` wins when it is given."""
    if declared:
        return data.decode(declared, "replace"), declared
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
                      (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(name, "replace"), name
    head = data[:4096]
    if head and head.count(b"\x00") > len(head) // 4:
        name = "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"
        return data.decode(name, "replace"), name
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes  # (a tenth of the server's start if imported)

    best = from_bytes(data).best()
    if best is not None and best.encoding not in ("ascii", "utf_8"):
        name = str(best.encoding)
        if name in _CJK and _decodes(data, "cp932"):
            # Short CJK samples are ambiguous between code pages (a Shift_JIS
            # file also "decodes" as Korean); Japanese legacy exports (Outlook,
            # Thunderbird on Japanese Windows) are by far the common case.
            name = "cp932"
        # charset-normalizer often calls Western text by a sibling code page;
        # cp1252 is what Windows exporters write and decodes Latin-1 text alike.
        if name in ("latin_1", "iso8859_15", "cp1250", "cp1254", "mac_roman"):
            name = "cp1252"
        try:
            return data.decode(name), name
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("cp1252", "replace"), "cp1252"


_CJK = frozenset({"cp932", "shift_jis", "euc_jp", "cp949", "euc_kr", "gb18030", "gb2312",
                  "big5", "big5hkscs", "iso2022_jp", "johab"})


def _decodes(data: bytes, name: str) -> bool:
    try:
        data.decode(name)
    except UnicodeDecodeError:
        return False
    return True


#: Characters no text export holds: C0 controls but tab, line ends, vertical tab
#: (FileMaker's line break inside a field) and form feed; and DEL.
_NOT_TEXT = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
#: The replacement character a guessed decoding leaves for bytes that are no text.
_NOT_TEXT_OR_UNDECODED = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufffd]")
#: How much of a file ``looks_binary`` judges it by.
_SAMPLE = 4096


def looks_binary(text: str, guessed: bool = True) -> bool:
    """Whether decoded ``text`` came from a file that is not text (an image, an archive).

    Read as CSV, every line of a GIF or an icon file became a "contact" (33 from
    one small GIF). A contacts export holds next to none of these characters;
    more than one in a hundred of the first 4 KB (and more than three) means
    the bytes were never text. Replacement characters count only when the
    encoding was ``guessed``: with one the user named, they are that
    encoding's reading, kept as before.
    """
    sample = text[:_SAMPLE]
    found = len((_NOT_TEXT_OR_UNDECODED if guessed else _NOT_TEXT).findall(sample))
    return found > max(3, len(sample) // 100)
