"""An email's match key is email-validator's normal form, with or without asking it.

``normalize.email_key`` answers plain lowercase ASCII addresses itself (they
are their own normal form) and asks email-validator about the rest. Duplicate
matching compares these keys across imports, sources and the book, so the
shortcut must never give another key than email-validator would.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from cardfile.plugin.vcard import card_fields, normalize
from tests.conftest import CORPUS, requires_corpus

AWKWARD = [
    "john.doe@example.com", "John.Doe@Example.COM", "mailto:Ann@example.org", " a@b ",
    "a..b@example.com", ".a@example.com", "a.@example.com", "a@example..com",
    "a@example.com.", "a@.example.com", "a@-example.com", "a@example-.com", "a@b",
    "a@localhost", "a@123", "a@1.2.3.4", "a@[1.2.3.4]", "user+tag@sub.example.co.uk",
    "x@xn--bcher-kva.example", "x@XN--BCHER-KVA.example", "%@example.com", "_@_.com",
    "a@ex_ample.com", "ab--cd@ab--cd.com", "a@" + "b" * 64 + ".com", "a" * 65 + "@b.com",
    "a@" + ".".join(["b" * 60] * 5) + ".com", "jörg@example.com", "j@exämple.com",
    '"quoted"@example.com', "a b@example.com", "a@b@c.com", "@example.com", "a@",
]


def _the_long_way(value: str) -> str:
    raw = card_fields.normalise_email(value)
    return normalize.validated_email_key(raw) if raw and "@" in raw else raw


def test_awkward_addresses_get_email_validators_key() -> None:
    for value in AWKWARD:
        assert normalize.email_key(value) == _the_long_way(value), value
    assert normalize.email_key("John.Doe@Example.COM") == "john.doe@example.com"
    assert normalize.email_key("x@xn--bcher-kva.example") == "x@bücher.example"


@settings(max_examples=400, deadline=None)
@given(st.from_regex(re.compile(r"[a-zA-Z0-9_%+.-]{1,70}@[a-zA-Z0-9_.-]{1,70}"),
                     fullmatch=True))
def test_any_ascii_address_gets_email_validators_key(value: str) -> None:
    assert normalize.email_key(value) == _the_long_way(value)


@requires_corpus
def test_the_corpus_addresses_get_email_validators_key() -> None:
    found = {m.group(1).strip() for path in CORPUS.rglob("*.vcf")
             for m in re.finditer(r"(?im)^(?:item\d+\.)?EMAIL[^:\n]*:([^\r\n]*)",
                                  path.read_text(encoding="utf-8", errors="replace"))}
    assert found, f"no EMAIL in {CORPUS}"
    for value in found:
        assert normalize.email_key(value) == _the_long_way(value), value
