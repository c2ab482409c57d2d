"""Match keys for people: emails, phone numbers and names in one comparable form.

Duplicates are found by comparing these keys, so every importer and the
``dedupe`` command must normalise the same way: emails through
``email-validator`` (then case-folded: ``John@X.org`` and ``john@x.org`` reach
the same person in practice), phones to E.164 through ``phonenumbers`` with a
default region for numbers written without a country code. Values that these
libraries refuse are still usable keys in a weaker form (digits only), because
real address books are full of ``911`` and ``contact@invalid``.
"""

from __future__ import annotations

import locale
import re
import unicodedata
from functools import lru_cache
from typing import Any

from cardfile.plugin.vcard import card_fields

# phonenumbers and email_validator are imported by the functions that use them:
# together they were a tenth of the server's start (its imports), and only
# duplicate matching and the API's email check need them.

FALLBACK_REGION = "US"


def default_region(configuration: Any = None) -> str:
    """``[storage] default_region`` if set, else the locale's country, else US."""
    if configuration is not None:
        try:
            value = str(configuration.get("storage", "default_region") or "").strip()
        except (KeyError, RuntimeError):
            value = ""
        if value:
            return value.upper()
    try:
        name = locale.getlocale()[0] or ""
    except ValueError:
        name = ""
    match = re.search(r"_([A-Za-z]{2})\b", name)
    return match.group(1).upper() if match else FALLBACK_REGION


def _validate(address: str) -> Any:
    """email-validator with Cardfile's one rule: syntax only (no DNS), any domain a
    person's book may hold (``example.org``, ``.test``), UTF-8 and quoted local parts."""
    from email_validator import validate_email

    return validate_email(address, check_deliverability=False, globally_deliverable=False,
                          allow_smtputf8=True, allow_quoted_local=True,
                          allow_display_name=False, test_environment=True)


#: A lowercase ASCII address of the common shape (dot-separated plain words on
#: both sides). email-validator's normal form of such an address, when it is
#: valid at all, is the address itself unless a domain label is IDNA
#: (``xn--``, given back in Unicode); and an invalid address is its own key.
_PLAIN_ADDRESS = re.compile(r"[a-z0-9_%+-]++(?:\.[a-z0-9_%+-]++)*+@[a-z0-9-]++(?:\.[a-z0-9-]++)*+")


@lru_cache(maxsize=65536)
def email_key(value: str) -> str:
    """The address as one person's key: validated, normalised and case-folded.

    A plain address (``_PLAIN_ADDRESS``) is its own key without asking
    email-validator, which took 110 us an address: two thirds of the time
    to match a 100,000-card book's people.
    """
    raw = card_fields.normalise_email(value)
    if not raw or "@" not in raw:
        return raw
    if _PLAIN_ADDRESS.fullmatch(raw) and "xn--" not in raw:
        return raw
    return validated_email_key(raw)


def validated_email_key(raw: str) -> str:
    """``raw`` (an address ``normalise_email`` made) as email-validator normalises it,
    case-folded; itself if it is not valid."""
    from email_validator import EmailNotValidError

    try:
        return str(_validate(raw).normalized).casefold()
    except (EmailNotValidError, ValueError):
        return raw


def email_problem(value: str) -> str | None:
    """Why ``value`` is not an email address (email-validator's sentence), or None.

    The API refuses an email a person types that fails this rule, and the web
    page shows the sentence at the field: one rule, in one place."""
    from email_validator import EmailNotValidError

    raw = card_fields.normalise_email(value)
    try:
        _validate(raw)
    except EmailNotValidError as e:
        return str(e)
    except ValueError as e:
        return str(e) or "it is not an email address"
    return None


@lru_cache(maxsize=65536)
def phone_key(value: str, region: str = FALLBACK_REGION) -> str:
    """E.164 (``+4930123456``) when the number parses, else its digits."""
    import phonenumbers

    raw = value.strip()
    if raw.lower().startswith("tel:"):
        raw = raw[4:].split(";", 1)[0]
    try:
        number = phonenumbers.parse(raw, region)
        if phonenumbers.is_possible_number(number):
            return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    except phonenumbers.NumberParseException:
        pass
    digits = card_fields.normalise_phone(raw)
    # Text in a phone field ("BusinessPhone", "ask reception") is compared as text.
    return digits if any(c.isdigit() for c in digits) else " ".join(raw.casefold().split())


def name_key(value: str) -> str:
    """A name for fuzzy comparison: accents, punctuation and case removed."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = re.sub(r"[^\w]+", " ", stripped.casefold()).split()
    return " ".join(words)
