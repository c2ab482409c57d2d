"""The table of multi-value entry kinds: which lines each is read from, how it is written.

One row per JSON list field. Reading and writing (``representation.py``,
``edit.py``) are the same code for every kind; a row only says

- ``prop``: the standard property a new entry is written as;
- ``also``: other properties read as entries of this kind, in card order
  (Apple's ``X-ABRELATEDNAMES`` and ``X-ABDATE``, the old ``X-JABBER`` lines);
- ``apple``: on a vCard 3 card a new entry is written as this Apple property,
  grouped with an ``X-ABLabel`` (what iOS/macOS and DAVx5 read on 3.0 cards);
- ``apple_types``: the TYPE values Apple writes as its built-in labels
  (``item1.X-ABLabel:_$!<Spouse>!$_`` is read as type ``spouse``, and written back so);
- ``v4_types``: on a vCard 4 card, the standard property takes only entries of
  these types (``ANNIVERSARY`` is the anniversary; any other date is an ``X-ABDATE``);
- ``legacy``: old one-service properties and the URI scheme their value is read with
  (``X-JABBER:a@b`` is ``xmpp:a@b``); an edited one is written as ``prop`` (IMPP);
- ``services``: URI scheme -> Apple's ``X-SERVICE-TYPE`` written with it;
- ``scheme``: a prefix the value is shown without (``tel:``, ``mailto:``);
- ``value``: ``text``, ``uri`` (written unescaped), ``uri-or-text`` (vCard 4's RELATED:
  a URI, else ``VALUE=text``), ``date`` (YYYY-MM-DD or --MM-DD) or ``address``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EntryKind:
    """How the entries of one JSON list field live in a card (see the module docstring)."""

    prop: str
    also: tuple[str, ...] = ()
    apple: str = ""
    apple_types: dict[str, str] = field(default_factory=dict)
    v4_types: frozenset[str] = frozenset()
    legacy: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    scheme: str = ""
    value: str = "text"

    @property
    def props(self) -> tuple[str, ...]:
        """Every property read as this kind."""
        return (self.prop, *((self.apple,) if self.apple else ()), *self.also, *self.legacy)

    def implied_type(self, prop: str) -> str:
        """The type a property says by being itself (``ANNIVERSARY``: anniversary)."""
        return next(iter(self.v4_types)) if prop == self.prop and len(self.v4_types) == 1 else ""

    def prop_for(self, types: list[str], label: str, v4: bool) -> str:
        """The property a new (or rewritten) entry of these types is written as."""
        if not self.apple:
            return self.prop
        if not v4:
            return self.apple
        if self.v4_types and (label or not set(types) & self.v4_types):
            return self.apple
        return self.prop

    def apple_label(self, types: list[str]) -> str:
        """Apple's built-in label for the first of ``types`` that has one (else "")."""
        name = next((self.apple_types[t] for t in types if t in self.apple_types), "")
        return f"_$!<{name}>!$_" if name else ""


RELATIONS = {"spouse": "Spouse", "partner": "Partner", "child": "Child", "parent": "Parent",
             "father": "Father", "mother": "Mother", "brother": "Brother", "sister": "Sister",
             "friend": "Friend", "assistant": "Assistant", "manager": "Manager"}
#: URI scheme -> the service name Apple writes in X-SERVICE-TYPE.
SERVICES = {"skype": "Skype", "xmpp": "Jabber", "aim": "AIM", "icq": "ICQ", "msnim": "MSN",
            "ymsgr": "Yahoo", "gtalk": "GoogleTalk", "qq": "QQ", "facebook": "Facebook"}

#: JSON list field -> its kind. Order: the order of the fields in the JSON contact.
KINDS: dict[str, EntryKind] = {
    "emails": EntryKind("EMAIL", scheme="mailto:"),
    "phones": EntryKind("TEL", scheme="tel:"),
    "urls": EntryKind("URL", value="uri"),
    "addresses": EntryKind("ADR", value="address"),
    "ims": EntryKind("IMPP", value="uri", services=SERVICES, legacy={
        "X-JABBER": "xmpp", "X-SKYPE": "skype", "X-SKYPE-USERNAME": "skype", "X-AIM": "aim",
        "X-ICQ": "icq", "X-MSN": "msnim", "X-YAHOO": "ymsgr", "X-GOOGLE-TALK": "xmpp"}),
    "related": EntryKind("RELATED", apple="X-ABRELATEDNAMES", apple_types=RELATIONS,
                         value="uri-or-text"),
    "dates": EntryKind("ANNIVERSARY", apple="X-ABDATE", value="date",
                       apple_types={"anniversary": "Anniversary", "other": "Other"},
                       v4_types=frozenset({"anniversary"})),
}
