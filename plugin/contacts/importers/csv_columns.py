"""What each CSV column means, for Google, Outlook, Thunderbird, LinkedIn and khard.

Every exporter names its columns differently, Outlook even per language. A
column name is normalised (accents, case and punctuation removed) and looked
up here; numbered columns (``E-mail 2 - Value``, ``Phone 1 - type``,
``Address 1 - City``) are read by pattern; a column nobody knows is kept on
the card as an ``X-`` property so nothing in the file is lost.

A column's meaning is a ``Column``: the field (``email``, ``phone``, ``adr``,
``url``, ``given``...), the slot it belongs to (columns of one slot build one
value: the street and city of one address) and the part of the slot
(``value``, ``type``, an address component) plus vCard TYPEs it implies.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    field: str
    slot: str = ""
    part: str = "value"
    types: tuple[str, ...] = ()


def norm(header: str) -> str:
    decomposed = unicodedata.normalize("NFKD", header)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", plain.casefold()).split())


def _c(field: str, slot: str = "", part: str = "value", *types: str) -> Column:
    return Column(field, slot, part, types)


_ADR_WORDS = {"street": "street", "street 2": "street2", "street 3": "street3",
              "address": "street", "address 2": "extended", "city": "city",
              "state": "region", "region": "region", "zipcode": "code", "zip": "code",
              "postal code": "code", "code": "code", "country": "country",
              "country region": "country", "po box": "box", "address po box": "box",
              "box": "box", "extended": "extended", "extended address": "extended",
              "formatted": "label", "label": "type", "type": "type"}

# Fixed (un-numbered) columns: normalised header -> meaning. English names of
# Google (both layouts), Outlook (desktop and Outlook.com), Thunderbird,
# LinkedIn and khard, then Outlook's German, French, Spanish, Italian, Dutch
# and Portuguese headers.
FIXED: dict[str, Column] = {
    # names
    "name": _c("fn"), "display name": _c("fn"), "formatted name": _c("fn"),
    "full name": _c("fn"), "file as": _c("x"),
    "first name": _c("given"), "given name": _c("given"),
    "middle name": _c("additional"), "additional name": _c("additional"),
    "additional 1": _c("additional"), "additional 2": _c("additional"),
    "last name": _c("family"), "family name": _c("family"), "surname": _c("family"),
    "name prefix": _c("prefix"), "prefix": _c("prefix"), "title": _c("prefix"),
    "name suffix": _c("suffix"), "suffix": _c("suffix"),
    "nickname": _c("nickname"), "nick name": _c("nickname"), "kind": _c("kind"),
    # organisation
    "company": _c("org"), "organization": _c("org"), "organization name": _c("org"),
    "organisation": _c("org"), "department": _c("department"),
    "organization department": _c("department"), "job title": _c("job"),
    "organization title": _c("job"), "position": _c("job"), "role": _c("role"),
    # dates and the rest
    "birthday": _c("bday"), "anniversary": _c("anniversary"), "gender": _c("gender"),
    "birth year": _c("bday", part="year"), "birth month": _c("bday", part="month"),
    "birth day": _c("bday", part="day"), "notes": _c("note"), "note": _c("note"),
    "labels": _c("categories"), "group membership": _c("categories"),
    "categories": _c("categories"), "uid": _c("uid"),
    # emails
    "e mail address": _c("email", "1"), "email address": _c("email", "1"),
    "e mail 2 address": _c("email", "2"), "e mail 3 address": _c("email", "3"),
    "primary email": _c("email", "1", "value", "pref"),
    "secondary email": _c("email", "2"), "e mail": _c("email", "1"),
    "email": _c("email", "1"),
    # phones
    "business phone": _c("tel", "bp", "value", "work", "voice"),
    "business phone 2": _c("tel", "bp2", "value", "work", "voice"),
    "work phone": _c("tel", "wp", "value", "work"),
    "home phone": _c("tel", "hp", "value", "home"),
    "home phone 2": _c("tel", "hp2", "value", "home"),
    "mobile phone": _c("tel", "mp", "value", "cell"),
    "mobile number": _c("tel", "mp", "value", "cell"), "mobile": _c("tel", "mp", "value", "cell"),
    "business fax": _c("tel", "bf", "value", "work", "fax"),
    "home fax": _c("tel", "hf", "value", "home", "fax"),
    "other fax": _c("tel", "of", "value", "fax"), "fax number": _c("tel", "fx", "value", "fax"),
    "fax": _c("tel", "fx", "value", "fax"),
    "pager": _c("tel", "pg", "value", "pager"), "pager number": _c("tel", "pg", "value", "pager"),
    "car phone": _c("tel", "cp", "value", "car"), "other phone": _c("tel", "op", "value", "voice"),
    "primary phone": _c("tel", "pp", "value", "pref"),
    "company main phone": _c("tel", "cm", "value", "work", "main"),
    "assistant s phone": _c("tel", "as", "value", "x-assistant"),
    "callback": _c("tel", "cb", "value", "x-callback"), "isdn": _c("tel", "is", "value", "isdn"),
    "radio phone": _c("tel", "rp", "value", "x-radio"),
    "telex": _c("tel", "tx", "value", "x-telex"),
    "tty tdd phone": _c("tel", "tt", "value", "textphone"),
    # web
    "web page": _c("url", "wp", "value", "work"), "web page 1": _c("url", "w1", "value", "work"),
    "web page 2": _c("url", "w2", "value", "home"), "webpage": _c("url", "w1"),
    "personal web page": _c("url", "pw", "value", "home"), "url": _c("url", "li", "value"),
    "website": _c("url", "w1"),
    # Thunderbird / LinkedIn specifics
    "screen name": _c("x", part="X-AIM"), "custom 1": _c("x", part="X-CUSTOM1"),
    "custom 2": _c("x", part="X-CUSTOM2"), "custom 3": _c("x", part="X-CUSTOM3"),
    "custom 4": _c("x", part="X-CUSTOM4"), "connected on": _c("x", part="X-LINKEDIN-CONNECTED-ON"),
    # Outlook noise: these hold defaults ("Normal", "False") and carry no information.
    "priority": _c("skip"), "sensitivity": _c("skip"), "private": _c("skip"),
    "initials": _c("skip"), "e mail type": _c("skip"), "e mail 2 type": _c("skip"),
    "e mail 3 type": _c("skip"), "e mail display name": _c("skip"),
    "e mail 2 display name": _c("skip"), "e mail 3 display name": _c("skip"),
}

# Thunderbird and Outlook address columns: "<Home|Work|Business|Other> <part>".
_ADR_PREFIX = {"home": "home", "work": "work", "business": "work", "other": ""}
for _prefix, _type in _ADR_PREFIX.items():
    for _word, _part in _ADR_WORDS.items():
        if _part not in ("type", "label"):
            FIXED.setdefault(f"{_prefix} {_word}", _c("adr", _prefix, _part, *([_type] if _type
                                                                               else [])))
FIXED["business address po box"] = _c("adr", "business", "box", "work")
FIXED["home address po box"] = _c("adr", "home", "box", "home")
FIXED["other address po box"] = _c("adr", "other", "box")

# Localised Outlook headers (normalised); unknown spellings still fall back to
# the keyword rules in ``classify``.
_LOCALISED: dict[str, str] = {
    # German
    "anrede": "title", "vorname": "first name", "weitere vornamen": "middle name",
    "nachname": "last name", "firma": "company", "abteilung": "department",
    "position": "job title", "e mail adresse": "e mail address",
    "e mail 2 adresse": "e mail 2 address", "e mail 3 adresse": "e mail 3 address",
    "telefon geschaftlich": "business phone", "telefon geschaftlich 2": "business phone 2",
    "telefon privat": "home phone", "telefon privat 2": "home phone 2",
    "mobiltelefon": "mobile phone", "fax geschaftlich": "business fax",
    "fax privat": "home fax", "geburtstag": "birthday", "jahrestag": "anniversary",
    "kategorien": "categories", "notizen": "notes", "webseite": "web page",
    "strasse geschaftlich": "business street", "ort geschaftlich": "business city",
    "region geschaftlich": "business state", "postleitzahl geschaftlich": "business postal code",
    "land region geschaftlich": "business country region", "strasse privat": "home street",
    "ort privat": "home city", "bundesland kanton privat": "home state",
    "region privat": "home state", "postleitzahl privat": "home postal code",
    "land region privat": "home country region", "spitzname": "nickname",
    # French
    "prenom": "first name", "nom": "last name", "deuxieme prenom": "middle name",
    "titre": "title", "suffixe": "suffix", "societe": "company", "service": "department",
    "fonction": "job title", "adresse de messagerie": "e mail address",
    "adresse de messagerie 2": "e mail 2 address", "adresse de messagerie 3": "e mail 3 address",
    "telephone bureau": "business phone", "telephone domicile": "home phone",
    "tel mobile": "mobile phone", "telephone mobile": "mobile phone",
    "telecopie bureau": "business fax", "anniversaire": "birthday",
    "page web": "web page", "rue bureau": "business street", "ville bureau": "business city",
    "code postal bureau": "business postal code", "pays region bureau": "business country region",
    "rue domicile": "home street", "ville domicile": "home city",
    "code postal domicile": "home postal code", "pays region domicile": "home country region",
    # Spanish
    "nombre": "first name", "apellidos": "last name", "segundo nombre": "middle name",
    "tratamiento": "title", "sufijo": "suffix", "organizacion": "company",
    "compania": "company", "departamento": "department", "puesto": "job title",
    "direccion de correo electronico": "e mail address",
    "direccion del correo electronico 2": "e mail 2 address",
    "telefono del trabajo": "business phone", "telefono particular": "home phone",
    "telefono movil": "mobile phone", "cumpleanos": "birthday", "categorias": "categories",
    "notas": "notes", "pagina web": "web page", "calle del trabajo": "business street",
    "ciudad de trabajo": "business city", "codigo postal del trabajo": "business postal code",
    # Italian
    "cognome": "last name", "secondo nome": "middle name", "societa": "company",
    "reparto": "department", "qualifica": "job title", "indirizzo posta elettronica":
    "e mail address", "telefono ufficio": "business phone", "abitazione": "home phone",
    "cellulare": "mobile phone", "compleanno": "birthday", "categorie": "categories",
    "note": "notes",
    # Dutch
    "voornaam": "first name", "achternaam": "last name", "tussenvoegsel": "middle name",
    "bedrijf": "company", "afdeling": "department", "functie": "job title",
    "e mailadres": "e mail address", "telefoon op werk": "business phone",
    "telefoon thuis": "home phone", "mobiele telefoon": "mobile phone",
    "verjaardag": "birthday", "categorieen": "categories", "notities": "notes",
    # Portuguese
    "sobrenome": "last name", "empresa": "company", "cargo": "job title",
    "endereco de email": "e mail address", "telefone comercial": "business phone",
    "telefone residencial": "home phone", "celular": "mobile phone",
    "aniversario": "birthday",
}
for _local, _english in _LOCALISED.items():
    FIXED.setdefault(_local, FIXED[_english])

_NUMBERED = re.compile(
    r"^(e ?mail|email|phone|address|website|organization|organisation|event|relation|im|"
    r"custom field|categories|external id) (\d++)(?: (.*))?$")  # \d++: a space or the end follows
_NUMBERED_FIELD = {"e mail": "email", "email": "email", "phone": "tel", "address": "adr",
                   "website": "url", "organization": "orgn", "organisation": "orgn",
                   "event": "event", "relation": "relation", "im": "impp",
                   "custom field": "custom", "categories": "categories",
                   "external id": "external"}


def classify(header: str) -> Column | None:
    """The meaning of a column, or None when it is unknown."""
    key = norm(header)
    if key in FIXED:
        return FIXED[key]
    match = _NUMBERED.match(key)
    if match:
        kind, number, rest = match.group(1), match.group(2), (match.group(3) or "value")
        field = _NUMBERED_FIELD[kind]
        if field == "adr":
            part = _ADR_WORDS.get(rest, "street" if rest == "value" else rest)
            return _c("adr", f"a{number}", part)
        if field == "orgn":
            part = {"name": "org", "title": "job", "department": "department"}.get(rest, rest)
            if rest == "value":
                return _c("org", f"o{number}")
            return _c(part, f"o{number}") if part in ("org", "job", "department") else None
        part = "type" if rest in ("type", "label") else "service" if rest == "service" else "value"
        return _c(field, f"{field}{number}", part)
    return _fallback(key)


def _fallback(key: str) -> Column | None:
    """Keyword rules for localised headers nobody listed."""
    words = key.split()
    if any("mail" in w for w in words):
        return _c("email", key)
    if any(w.startswith(("phone", "telef", "tel", "mobil", "handy")) for w in words):
        return _c("tel", key)
    return None
