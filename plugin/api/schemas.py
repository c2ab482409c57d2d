"""JSON Schemas (2020-12) of the API's bodies: one source for docs and checks.

The OpenAPI document publishes these, and ``validate`` checks request bodies
against the very same schemas, so what the document promises is what the
server enforces. Input strings refuse control characters (they cannot be
written into a vCard line); line breaks and tabs are fine (cards escape them,
and real address books have multi-line streets).
"""

from __future__ import annotations

from typing import Any

from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.representation import ADDRESS_PARTS, FIELDS
from cardfile.plugin.api.schema_check import SchemaCheck

_NO_CONTROL = "^[^\\u0000-\\u001f\\u007f]*$"
_NO_CONTROL_BUT_BREAKS = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"


def _text(max_length: int = 1000, min_length: int = 0, breaks: bool = True
          ) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length,
                              "pattern": _NO_CONTROL_BUT_BREAKS if breaks else _NO_CONTROL}
    if min_length:
        schema["minLength"] = min_length
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_TYPES = {"type": "array", "maxItems": 10,
          "items": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,40}$"},
          "description": "vCard TYPE values, lower case (home, work, cell, ...)"}
_LABEL = {**_text(200, breaks=False),
          "description": "the entry's own label (Apple's X-ABLabel); omitted: kept as it is"}
_VALUE_ENTRY_IN = {
    "type": "object", "additionalProperties": False, "required": ["value"],
    "properties": {"value": _text(1000), "type": _TYPES, "pref": {"type": "boolean"},
                   "label": _LABEL}}
_ADDRESS_IN = {
    "type": "object", "additionalProperties": False,
    "properties": {**{p: _text(500) for p in ADDRESS_PARTS}, "type": _TYPES,
                   "pref": {"type": "boolean"}, "label": _LABEL}}
# No control character and not only spaces: leading spaces, then the first character
# that is not one (no space can be taken for it), then the rest, so one pass decides
# and nothing is given back to be tried again. The former
# ``^X*[^\s]X*$`` backtracked quadratically (0.9 s for a 10,000-character name, and
# jsonschema runs a pattern even past maxLength); it also let one control character
# through as the ``[^\s]``. No lookahead: schemathesis generates from this pattern, and
# with ``(?=...)`` it filtered out too many of its examples.
NAME_PATTERN = ("^[^\\S\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f]"
                "[^\\u0000-\\u001f\\u007f]*$")
_CATEGORY_NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN}
_READ_ONLY = {"readOnly": True, "description": "read-only; ignored on input"}


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return _nullable({"type": "array", "maxItems": 100, "items": items})


CONTACT_INPUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "A contact to store. PUT clears fields it omits (except photo); PATCH "
                   "(merge patch) changes only fields it names, null clears one. Any "
                   "vCard property this form does not model is kept.",
    "properties": {
        "id": {"type": "string", **_READ_ONLY}, "etag": {"type": "string", **_READ_ONLY},
        "url": {"type": "string", **_READ_ONLY}, "updated": {"type": "string", **_READ_ONLY},
        "uid": {**_text(200, 1, breaks=False),
                "description": "on POST, the UID to use; else must match"},
        "photo": _nullable({"type": "string", "description": "null removes the photo; "
                                                             "a string is ignored"}),
        "name": _nullable(_text(1000)), "given": _nullable(_text(500)),
        "family": _nullable(_text(500)),
        **{k: _nullable(_text(500, breaks=False)) for k in (
            "middle", "prefix", "suffix", "phonetic_given", "phonetic_family")},
        "nickname": _nullable({**_text(500, breaks=False),
                               "description": "nicknames, separated by commas"}),
        "emails": _list(_VALUE_ENTRY_IN), "phones": _list(_VALUE_ENTRY_IN),
        "urls": _list(_VALUE_ENTRY_IN), "addresses": _list(_ADDRESS_IN),
        "ims": _list({**_VALUE_ENTRY_IN, "description": "instant messaging: a URI "
                      "(skype:alice, xmpp:a@example.org, sip:...)"}),
        "related": _list({**_VALUE_ENTRY_IN, "description": "a related person: a name or a "
                          "URI; type spouse, child, parent, friend, assistant, manager..."}),
        "dates": _list({**_VALUE_ENTRY_IN, "description": "an anniversary or other date: "
                        "YYYY-MM-DD or --MM-DD; type anniversary or other, or a label"}),
        "organization": _nullable(_text(500)), "title": _nullable(_text(500)),
        "birthday": _nullable({**_text(100), "description": "YYYY-MM-DD or --MM-DD; "
                               "free text (circa 1800) only on vCard 4 cards"}),
        "notes": _nullable(_text(100_000)),
        "categories": _nullable({"type": "array", "maxItems": 100, "items": _CATEGORY_NAME}),
    },
}

CONTACT_PATCH: dict[str, Any] = {
    **CONTACT_INPUT,
    "description": "A merge patch: only the fields it names change, null clears one. With "
                   "base (the values, as the client read them, of the fields it changes) "
                   "and If-Match naming the ETag it read, a contact changed meanwhile is "
                   "merged: fields nobody else changed are applied on top of the current "
                   "version; a field changed on both sides is a 409 listing base, yours and "
                   "theirs.",
    "properties": {**CONTACT_INPUT["properties"], "base": {
        "type": "object", "description": "the fields' values at the ETag in If-Match",
        "properties": {k: v for k, v in CONTACT_INPUT["properties"].items()},
        "additionalProperties": False}},
}
_VALUE_ENTRY = {"type": "object", "required": ["value", "type", "pref", "label"], "properties": {
    "value": {"type": "string"}, "type": {"type": "array", "items": {"type": "string"}},
    "pref": {"type": "boolean"}, "label": {"type": "string"}}}
_ADDRESS = {"type": "object", "required": [*ADDRESS_PARTS, "type", "pref", "label"],
            "properties": {**{p: {"type": "string"} for p in ADDRESS_PARTS},
                           "type": {"type": "array", "items": {"type": "string"}},
                           "pref": {"type": "boolean"}, "label": {"type": "string"}}}
_STR_OR_NULL = {"type": ["string", "null"]}

CONTACT: dict[str, Any] = {
    "type": "object", "required": ["id"],
    "description": "A contact. With ?fields= only the named fields (and id) are present.",
    "properties": {
        "id": {"type": "string", "description": "stable id: the UID, or ~base64url(UID)"},
        "uid": {"type": "string"}, "etag": {"type": "string"},
        "url": {"type": "string", "description": "this contact's address in the API"},
        "name": {"type": "string"}, "given": {"type": "string"}, "family": {"type": "string"},
        "middle": {"type": "string"}, "prefix": {"type": "string"}, "suffix": {"type": "string"},
        "nickname": _STR_OR_NULL, "phonetic_given": _STR_OR_NULL,
        "phonetic_family": _STR_OR_NULL,
        "emails": {"type": "array", "items": _VALUE_ENTRY},
        "phones": {"type": "array", "items": _VALUE_ENTRY},
        "urls": {"type": "array", "items": _VALUE_ENTRY},
        "addresses": {"type": "array", "items": _ADDRESS},
        **{k: {"type": "array", "items": _VALUE_ENTRY} for k in ("ims", "related", "dates")},
        "organization": _STR_OR_NULL, "title": _STR_OR_NULL, "birthday": _STR_OR_NULL,
        "notes": _STR_OR_NULL,
        "categories": {"type": "array", "items": {"type": "string"}},
        "photo": {"type": ["string", "null"], "description": "URL of the photo's bytes"},
        "updated": {"type": "string", "format": "date-time"},
    },
}
CONTACT_LIST: dict[str, Any] = {
    "type": "object", "required": ["total", "count", "items", "next_cursor", "next"],
    "properties": {
        "total": {"type": "integer", "minimum": 0,
                  "description": "contacts matching q/category in all pages"},
        "count": {"type": "integer", "minimum": 0},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Contact"}},
        "next_cursor": {"type": ["string", "null"]},
        "next": {"type": ["string", "null"], "description": "URL of the next page"},
        "offset": {"type": "integer", "minimum": 0,
                   "description": "the position this page starts at (when asked by offset)"},
    },
}
CATEGORY: dict[str, Any] = {
    "type": "object", "required": ["id", "name", "count", "url", "members"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "count": {"type": "integer", "minimum": 0}, "color": {"type": "string"},
        "description": {"type": "string"}, "uid": {"type": "string"},
        "url": {"type": "string"}, "members": {"type": "string"},
    },
}
CATEGORY_INPUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "PUT: name renames (or names a new category); color and description "
                   "are set when given and kept when omitted.",
    "properties": {
        "name": _CATEGORY_NAME, "color": _text(100), "description": _text(2000),
        "id": {"type": "string", **_READ_ONLY}, "count": {"type": "integer", **_READ_ONLY},
        "uid": {"type": "string", **_READ_ONLY}, "url": {"type": "string", **_READ_ONLY},
        "members": {"type": "string", **_READ_ONLY},
    },
}
NEW_CATEGORY: dict[str, Any] = {**CATEGORY_INPUT, "required": ["name"],
                                 "description": "A category to create."}
MEMBER_IDS: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["ids"],
    "properties": {"ids": {"type": "array", "minItems": 1, "maxItems": 10_000,
                           "items": {"type": "string", "minLength": 1, "maxLength": 300}}},
}
PROBLEM: dict[str, Any] = {
    "type": "object", "required": ["title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"}},
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Contact": CONTACT, "ContactInput": CONTACT_INPUT, "ContactPatch": CONTACT_PATCH,
    "ContactList": CONTACT_LIST,
    "Category": CATEGORY, "CategoryInput": CATEGORY_INPUT, "NewCategory": NEW_CATEGORY,
    "MemberIds": MEMBER_IDS,
    "Problem": PROBLEM,
}
_VALIDATORS = {name: SchemaCheck(SCHEMAS[name])
               for name in ("ContactInput", "ContactPatch", "CategoryInput", "NewCategory",
                            "MemberIds")}
assert set(FIELDS) == set(CONTACT["properties"])


def validate(data: Any, name: str) -> dict[str, Any]:
    """``data`` if it fits schema ``name``, else 422 naming the first misfit."""
    error = _VALIDATORS[name].first_error(data)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the body"
        message = error.message if len(error.message) < 200 else error.message[:200] + "..."
        raise Problem(422, f"{where}: {message}")
    assert isinstance(data, dict)
    return data
