"""Which image a byte string really is, from its first bytes (magic numbers).

A card's PHOTO or LOGO says what it is (``data:image/png``, ``TYPE=JPEG``),
but the card is written by whoever wrote the card: ``data:text/html`` or an
SVG with a script are as easy to write as a JPEG. Anything Cardfile serves
or hands on as an image is checked here first, and its media type is the
one its bytes show, never the one its card claims. Only the four raster
formats every browser and phone shows are recognised; SVG is refused on
purpose (it is a document that can run scripts, not a picture).
"""

from __future__ import annotations

#: The media types Cardfile serves as images, and the file extension of each.
IMAGE_TYPES: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
}


def image_type(data: bytes) -> str | None:
    """The media type of ``data`` if it is a JPEG, PNG, GIF or WebP image, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def extension(media_type: str) -> str:
    """The file extension for one of ``IMAGE_TYPES`` (``jpg`` for ``image/jpeg``)."""
    return IMAGE_TYPES[media_type]
