"""Make vobject 0.9.9 keep a vCard's meaning through Radicale's parse-then-serialise.

Radicale stores ``read_components(text)[0].serialize()`` for every upload, so each
lossy spot in vobject's vCard handling silently rewrites people's contacts; each patch
below names the loss it closes. The central one: a text value remembers the client's
own spelling and writes it back while that still decodes to the current value. That
keeps URIs byte-identical and keeps the list and field separators of properties vobject
does not model (``NICKNAME:a,b``, ``GENDER:M;x``, ``X-CUSTOM:a,b``); only values a
program changed are escaped afresh. No other module should know vobject's internals.
"""

from __future__ import annotations

import base64
import io
import quopri
import re
from collections.abc import Callable
from typing import Any

from vobject import base, icalendar, vcard

_INSTALLED = "_cardfile_fidelity_installed"  # kept on vobject itself: module copies share it
_RAW = "_cardfile_raw"  # the client's spelling of a text value, before unescaping

_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_UNESCAPED = {"n": "\n", "N": "\n", "\\": "\\", ",": ",", ";": ";", ":": ":", '"': '"'}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# Properties whose value is a URI in vCard 3.0/4.0 (RFC 2426, 2739, 4770, 6350).
_URI_PROPERTIES = frozenset({"URL", "SOURCE", "IMPP", "MEMBER", "FBURL", "CALURI", "CALADRURI"})
# Properties that hold a URI when the value starts with a scheme (``data:``, ``http:``...).
_MAYBE_URI_PROPERTIES = frozenset({"PHOTO", "LOGO", "SOUND", "KEY", "RELATED"})


def _unescape(raw: str) -> str:
    """Read vCard text escapes, ``\\:`` included: Apple writes ``URL:http\\://...``.

    An unknown escape (``C:\\Users``) stays as written, like stock vobject. URIs
    go through here too: a backslash can never be part of a URI (RFC 3986), so any
    one in a URI value is a text-style escape from a client that treated it as text.
    """
    if "\\" not in raw:
        return raw
    return _ESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(0)), raw)


def _upper(values: list[str]) -> set[str]:
    return {v.upper() for v in values}


def _is_base64(line: Any) -> bool:
    """3.0 says ENCODING=b, 2.1 says ENCODING=BASE64, Apple writes a bare BASE64."""
    encodings = _upper(line.params.get("ENCODING", []))
    return bool(encodings & {"B", "BASE64"}) or "BASE64" in _upper(line.singletonparams)


def _is_uri(line: Any) -> bool:
    """URIs are written unescaped (RFC 6350 3.3): ``data:image/png;base64,...`` as is."""
    value_types = _upper(line.params.get("VALUE", []))
    if value_types & {"URI", "URL"} or "URL" in _upper(line.singletonparams):
        return True  # 2.1 says VALUE=URL, or a bare URL
    name = line.name.upper()
    if "TEXT" in value_types or name not in _URI_PROPERTIES | _MAYBE_URI_PROPERTIES:
        return False
    return name in _URI_PROPERTIES or bool(_SCHEME.match(str(line.value)))


def _decode_text(cls: Any, line: Any) -> None:
    """Replace ``VCardTextBehavior.decode``, which keeps only the text before the
    first unescaped comma (it reads single text as a comma-separated list)."""
    if not line.encoded:
        return
    if _is_base64(line):
        try:
            line.value = base64.b64decode(line.value)
            line.encoded = False
            return
        except ValueError:  # binascii.Error, or a non-ASCII str
            pass  # damaged data (seen in Android exports) is kept verbatim, not refused
    setattr(line, _RAW, line.value)
    line.value = _unescape(line.value)
    line.encoded = False


def _spell_text(line: Any) -> str:
    """The client's spelling if it still means the current value, else a fresh one."""
    value: str = line.value
    raw = getattr(line, _RAW, None)
    if isinstance(raw, str):
        # A QP-decoded 2.1 value holds real line breaks: those must become ``\n``.
        for candidate in (raw, _LINE_BREAK.sub(r"\\n", raw)):
            # Line-break spellings are equal: vCard text cannot tell them apart.
            same = _LINE_BREAK.sub("\n", _unescape(candidate)) == _LINE_BREAK.sub("\n", value)
            if same and not _LINE_BREAK.search(candidate):
                return candidate
    if _is_uri(line) and not _LINE_BREAK.search(value):
        return value
    return str(base.backslashEscape(value))


def _encode_text(cls: Any, line: Any) -> None:
    """Replace ``VCardTextBehavior.encode``: stock escapes URIs, and it crashes on
    2.1 ``ENCODING=BASE64`` because it only recognises 3.0's ``b``."""
    if line.encoded:
        return
    if _is_base64(line) and isinstance(line.value, bytes):
        line.value = base64.b64encode(line.value).decode("ascii")
    else:
        # Radicale strips control characters from all it reads (QP can smuggle one in):
        # writing them would only make the next read differ from this one.
        line.value = _CONTROL.sub("", _spell_text(line))
    line.encoded = True


_stock_text_values: Callable[..., list[str]] = icalendar.stringToTextValues


def _vcard_text_values(
    s: str, listSeparator: str = ",", charList: str | None = None, strict: bool = False
) -> list[str]:
    """N, ADR and ORG components read ``\\:`` as ``:`` too (see ``_unescape``), and
    keep a trailing empty item: 2.1 has no lists, so Outlook's ``Silicon Alley 5,``
    street is literal text that stock vobject writes back without its comma."""
    if charList is None:
        charList = icalendar.escapableCharList + ":"
    values = list(_stock_text_values(s, listSeparator, charList, strict))
    body = s[: -len(listSeparator)]
    if s.endswith(listSeparator) and (len(body) - len(body.rstrip("\\"))) % 2 == 0:
        values.append("")  # the separator is not escaped: an empty item follows it
    return values


def _serialize_fields(obj: Any, order: tuple[str, ...] | None = None) -> str:
    """Replace ``vcard.serializeFields``: vobject reads ``ORG:Company, The`` as a list
    in the first component, then crashes writing it; join such lists with commas."""
    fields = obj if order is None else [getattr(obj, name) for name in order]
    return ";".join(",".join(base.backslashEscape(v) for v in vcard.toList(f)) for f in fields)


def _write_line(obj: Any, buf: Any, line_length: int) -> Any:
    """``defaultSerialize`` for a line, plus the vCard 2.1 bare parameters stock drops.

    ``TEL;CELL;PREF`` is written back bare, as sent: 2.1 has no comma lists, so
    ``TYPE=CELL,PREF`` would make a 2.1 card invalid, while bare tokens are what 2.1
    readers (phones, Outlook) expect; a 3.0/4.0 card keeps what its client wrote.
    """
    was_encoded = obj.encoded
    if obj.behavior and not was_encoded:
        obj.behavior.encode(obj)
    try:
        head = obj.name.upper() if obj.group is None else f"{obj.group}.{obj.name.upper()}"
        params = [
            f"{k}={','.join(map(base.dquoteEscape, obj.params[k]))}" for k in sorted(obj.params)
        ]
        text = ";".join([head, *obj.singletonparams, *params]) + f":{obj.value}"
    finally:
        if obj.behavior and not was_encoded:
            obj.behavior.decode(obj)
    out = buf or io.StringIO()
    base.foldOneLine(out, text, line_length)
    return buf or out.getvalue()


def _make_serialize(stock: Callable[..., Any]) -> Callable[..., Any]:
    def default_serialize(obj: Any, buf: Any, line_length: int) -> Any:
        """Also declare UTF-8: QP is decoded on reading and the card is written as
        Unicode text, so a kept ``CHARSET=ISO-8859-1`` would make 2.1 readers that
        honour it (Android) produce mojibake."""
        if not isinstance(obj, base.ContentLine):
            return stock(obj, buf, line_length)
        if "CHARSET" in obj.params:
            obj.params["CHARSET"] = ["UTF-8"]
        if obj.singletonparams:
            return _write_line(obj, buf, line_length)
        return stock(obj, buf, line_length)

    return default_serialize


# What a property line starts with: an optional group, then a vCard name in capitals.
_PROPERTY_START = re.compile(r"(?:[A-Za-z0-9-]+\.)?([A-Z][A-Z0-9-]*)[;:]")
_PROPERTY_NAMES = frozenset(
    "ADR AGENT ANNIVERSARY BDAY BEGIN CALADRURI CALURI CATEGORIES CLASS CLIENTPIDMAP EMAIL"
    " END FBURL FN GENDER GEO IMPP KEY KIND LABEL LANG LOGO MAILER MEMBER N NAME NICKNAME"
    " NOTE ORG PHOTO PRODID PROFILE RELATED REV ROLE SORT-STRING SOUND SOURCE TEL TITLE TZ"
    " UID URL VERSION XML".split()
)


def _end_dangling_qp(text: str) -> str:
    """Put back the blank line that ends a QP value whose last line is a soft break.

    vCard 2.1 ends such a value with a blank line, but Radicale deletes blank lines
    before parsing, so vobject glued the next property (``CATEGORIES``, even
    ``END:VCARD``) into the value. A capitalised vCard property name right after a
    soft break is taken as the next property: encoded text almost never looks so.
    """
    out: list[str] = []
    in_qp = False
    for line in text.split("\n"):
        start = _PROPERTY_START.match(line) if in_qp else None
        if start and (start.group(1) in _PROPERTY_NAMES or start.group(1).startswith("X-")):
            out.append("")
            in_qp = False  # this line starts a new property
        out.append(line)
        body = line.rstrip("\r")
        in_qp = body.endswith("=") and (in_qp or "QUOTED-PRINTABLE" in body.upper())
    return "\n".join(out)


def _make_logical_lines(stock: Callable[..., Any]) -> Callable[..., Any]:
    def get_logical_lines(fp: Any, allowQP: bool = True) -> Any:
        return stock(io.StringIO(_end_dangling_qp(fp.read())) if allowQP else fp, allowQP)

    return get_logical_lines


def _decode_qp(value: str, charset: str | None) -> str:
    """QP bytes in the declared charset, damaged bytes replaced; undeclared ones
    that are not UTF-8 are taken as Windows-1252, what Outlook writes."""
    data = quopri.decodestring(value.encode("utf-8"))
    for encoding in filter(None, (charset, "utf-8")):
        try:
            return data.decode(encoding, errors="replace" if encoding == charset else "strict")
        except (LookupError, UnicodeDecodeError):
            pass
    return data.decode("cp1252", errors="replace")


def _without_qp(params: list[list[str]]) -> list[list[str]]:
    plain = [[p[0], *(v for v in p[1:] if v.upper() != "QUOTED-PRINTABLE")] for p in params]
    return [p for p in plain if p[1:] or p[0].upper() not in ("QUOTED-PRINTABLE", "ENCODING")]


def _make_init(stock: Callable[..., Any]) -> Callable[..., Any]:
    def init(
        self: Any, name: str, params: list[list[str]], value: Any, *args: Any, **kw: Any
    ) -> None:
        """Stock decodes QP strictly and refuses the whole card over one bad byte
        (Android's ``=80``) or an unknown CHARSET; retry with a tolerant decode."""
        try:
            stock(self, name, params, value, *args, **kw)
        except (UnicodeDecodeError, LookupError):
            charset = next((p[1] for p in params if p[0].upper() == "CHARSET" and p[1:]), None)
            stock(self, name, _without_qp(params), _decode_qp(value, charset), *args, **kw)

    return init


def _make_set_profile(stock: Callable[..., Any]) -> Callable[..., Any]:
    def set_profile(self: Any, name: str) -> None:
        """Keep ``PROFILE:VCard`` (Lotus Notes) as a property; stock compares the
        name case-sensitively, refuses the whole card, and drops ``PROFILE:VCARD``."""
        if self.name and self.name == name.upper():
            self.add(base.ContentLine("PROFILE", [], name, encoded=True))
            return
        stock(self, name)

    return set_profile


def _make_copy(stock: Callable[..., Any]) -> Callable[..., Any]:
    def copy(self: Any, copyit: Any) -> None:
        """A duplicated line keeps the client's spelling, like ``copy.copy`` does."""
        stock(self, copyit)
        raw = getattr(copyit, _RAW, None)
        if raw is not None:
            setattr(self, _RAW, raw)

    return copy


def _make_validate(original: Any) -> Any:
    """VCard validation that requires FN except in vCard 2.1."""
    plain = original.__func__

    def validate(cls: Any, obj: Any, raiseException: bool = False,  # noqa: N803
                 complainUnrecognized: bool = False) -> Any:  # noqa: N803
        ok = plain(cls, obj, raiseException, complainUnrecognized)
        if ok and isinstance(obj, base.Component) and not obj.contents.get("fn"):
            versions = obj.contents.get("version") or []
            version = str(versions[0].value).strip() if versions else ""
            if version != "2.1":
                if raiseException:
                    raise base.ValidateError(
                        "the card has no FN (formatted name); vCard 3.0 and 4.0 require one")
                return False
        return ok

    return validate


# vobject's content-line pattern nests a quantified parameter value inside two more
# quantifiers (``(?:(?:=v)?(?:,v)*)*`` with ``v`` able to hold ``=``), so a line such as
# ``TEL;X=====...`` with no colon backtracks exponentially: 22 ``=`` take a second, 30
# take minutes, holding the GIL while every other request waits. The same language,
# written so each character has one way to match (possessive runs, atomic parameters):
# a name is followed by none of its own characters and a quoted value ends at its one
# closing quote, so no run ever has anything to give back.
# Property names also take ``/``: legacy exporters write ``X-messaging/twitter-All``,
# and a card that has one was refused whole.
_NAME = r"[a-zA-Z0-9_/-]++"
_PARAM_VALUE = r'(?:"[^"]*+"|[^";:,]*+)'
_LINE = re.compile(
    rf"^(?:(?P<group>{_NAME})\.)?(?P<name>{_NAME})"
    rf"(?P<params>(?>(?:;(?=;))?(?:;{_NAME}(?:[=,]{_PARAM_VALUE})*+)*+))"
    r":(?P<value>.*)$", re.DOTALL)
_PARAMS = re.compile(rf'; ({_NAME}) (?: = ( (?: {_PARAM_VALUE} )? (?: , {_PARAM_VALUE} )*+ ) )?',
                     re.VERBOSE)


def install() -> None:
    """Patch vobject's vCard handling in place; later calls do nothing."""
    text = vcard.VCardTextBehavior
    if getattr(text, _INSTALLED, False):
        return
    text.decode = classmethod(_decode_text)  # FN, LABEL, PHOTO and the default inherit it
    text.encode = classmethod(_encode_text)
    # vCard UID and PRODID borrow iCalendar's TextBehavior, which also cuts at a comma:
    # register the vCard one under the vCard version and point the card at it.
    version = vcard.VCard3_0.versionString
    for name in ("UID", "PRODID"):
        base.registerBehavior(text, name, id=version)
        low, high, _ = vcard.VCard3_0.knownChildren[name]
        vcard.VCard3_0.knownChildren[name] = (low, high, version)
    # vCard 2.1 cards may lack FN and vCard 4 allows several N linked by ALTID;
    # FN stays required for 3.0 and 4.0 (RFC 2426, RFC 6350), as stock Radicale
    # requires, but is checked per version instead of for every card.
    vcard.VCard3_0.knownChildren["FN"] = (0, None, None)
    vcard.VCard3_0.knownChildren["N"] = (0, None, None)
    vcard.VCard3_0.validate = classmethod(_make_validate(vcard.VCard3_0.validate))
    vcard.stringToTextValues = _vcard_text_values
    vcard.serializeFields = _serialize_fields
    base.defaultSerialize = _make_serialize(base.defaultSerialize)
    base.Component.setProfile = _make_set_profile(base.Component.setProfile)
    base.ContentLine.copy = _make_copy(base.ContentLine.copy)
    base.ContentLine.__init__ = _make_init(base.ContentLine.__init__)
    base.getLogicalLines = _make_logical_lines(base.getLogicalLines)
    base.line_re = _LINE
    base.params_re = _PARAMS
    setattr(text, _INSTALLED, True)
