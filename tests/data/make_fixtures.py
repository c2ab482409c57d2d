"""Write the fixtures whose bytes are awkward to type: other encodings and inline images.

Run ``python3 tests/data/make_fixtures.py`` to regenerate them; the output is
committed, so the tests never run this. Everything here was written for Cardfile
(the people are invented, the images are drawn below), nothing is copied from
another project. The images are real, decodable files, built byte by byte so
that no imaging library is needed.
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tiny_png() -> bytes:
    """A 2x2 RGB PNG (red, green / blue, white), the smallest honest PNG a phone sends."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"\x00\xff\x00\x00\x00\xff\x00" + b"\x00\x00\x00\xff\xff\xff\xff"
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 2x2, 8 bit, truecolour
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def tiny_jpeg() -> bytes:
    """An 8x8 mid-grey baseline JPEG (JFIF), one block, one Huffman code per table.

    A uniform grey of 128 has a DC coefficient of 0 after the level shift and no
    AC coefficients, so the whole scan is two one-bit codes: DC category 0 and
    end-of-block, padded with 1 bits.
    """
    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    jfif = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    quant = segment(0xDB, b"\x00" + b"\x01" * 64)  # table 0, 8-bit, all ones
    frame = segment(0xC0, struct.pack(">BHHB", 8, 8, 8, 1) + b"\x01\x11\x00")
    one_code = b"\x01" + b"\x00" * 15  # one code of length 1 ...
    dc = segment(0xC4, b"\x00" + one_code + b"\x00")  # ... for DC category 0
    ac = segment(0xC4, b"\x10" + one_code + b"\x00")  # ... for AC end-of-block
    scan = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return b"\xff\xd8" + jfif + quant + frame + dc + ac + scan + b"\x3f" + b"\xff\xd9"


def fold(line: str, width: int = 75) -> list[str]:
    """RFC 6350 folding: physical lines of at most ``width`` octets, continued by a space."""
    out, rest = [line[:width]], line[width:]
    while rest:
        out.append(" " + rest[:width - 1])
        rest = rest[width - 1:]
    return out


def card(*lines: str) -> str:
    physical = [p for line in ("BEGIN:VCARD", *lines, "END:VCARD") for p in fold(line)]
    return "\r\n".join(physical) + "\r\n"


def main() -> None:
    png = base64.b64encode(tiny_png()).decode()
    (HERE / "vcard4-photo-data-uri.vcf").write_text(card(
        "VERSION:4.0", "UID:fixture-photo-png", "FN:Inês Carvalho", "N:Carvalho;Inês;;;",
        f"PHOTO:data:image/png;base64,{png}"), newline="")
    jpeg = base64.b64encode(tiny_jpeg()).decode()
    (HERE / "vcard3-photo-base64.vcf").write_text(card(
        "VERSION:3.0", "UID:fixture-photo-jpeg", "FN:Oluwaseun Adeyemi",
        "N:Adeyemi;Oluwaseun;;;", f"PHOTO;ENCODING=b;TYPE=JPEG:{jpeg}"), newline="")
    # Windows Notepad's "Unicode": UTF-16 little-endian with a byte order mark.
    utf16 = card("VERSION:3.0", "UID:fixture-utf16-1", "FN:Zoë Ångström",
                 "N:Ångström;Zoë;;;", "EMAIL;TYPE=INTERNET:zoe@uppsala.example",
                 "NOTE:Åsa's cousin – met in Umeå") + card(
                 "VERSION:3.0", "UID:fixture-utf16-2", "FN:Đorđe Šćepanović",
                 "N:Šćepanović;Đorđe;;;", "TEL;TYPE=CELL:+381 11 555 0164")
    (HERE / "utf16-bom.vcf").write_bytes(b"\xff\xfe" + utf16.encode("utf-16-le"))
    # An old Windows exporter's 8-bit file that says nothing about its charset.
    cp1252 = card("VERSION:3.0", "UID:fixture-cp1252-1", "FN:François Lefèvre",
                  "N:Lefèvre;François;;;", "ORG:Crêperie Lefèvre", "NOTE:Galettes à 9 €")
    cp1252 += card("VERSION:2.1", "N:Müller;Jürgen", "FN:Jürgen Müller",
                   "TEL;WORK;VOICE:+49 221 555 0133", "ADR;WORK:;;Hauptstraße 5;Köln;;50667")
    (HERE / "cp1252.vcf").write_bytes(cp1252.encode("cp1252"))


if __name__ == "__main__":
    main()
