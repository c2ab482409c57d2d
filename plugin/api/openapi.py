"""The OpenAPI 3.1 document of the API, built from the same schemas it enforces.

Body schemas come from ``schemas.py`` (which also validates requests), the
paths from the same names as ``routes.py``; a test compares the two tables
and schemathesis checks the running server against this document.
"""

from __future__ import annotations

from typing import Any

from cardfile.plugin.api import grant_schemas
from cardfile.plugin.api.representation import FIELDS
from cardfile.plugin.api.schemas import SCHEMAS
from cardfile.plugin.api.source_views import SCHEMAS as SOURCE_SCHEMAS
from cardfile.plugin.api.source_views import source_paths
from cardfile.plugin.api.web import IMPORT_TYPES
from cardfile.plugin.contacts import importers
from cardfile.plugin.vcard.image_check import IMAGE_TYPES

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_SENTENCES = {
    304: "Not modified (If-None-Match names the current ETag)",
    400: "The request is malformed (query parameter, cursor, JSON syntax)",
    401: "Not logged in: HTTP Basic with a Cardfile user",
    403: "Refused: a page on another site (Sec-Fetch-Site cross-site or same-site, or an "
         "Origin that is not this server's) sent this change, or the book is read-only",
    404: "No such address book (of yours), contact or category",
    409: "Conflicts with what is stored (UID or name in use; a PATCH with base whose "
         "fields were changed on both sides: conflicts lists base, yours and theirs)",
    410: "Gone: the deleted card's text was not kept (its file could not be read)",
    412: "If-Match / If-None-Match does not hold: the contact changed since it was read",
    413: "The body is larger than max_content_length, or the card than max_resource_size",
    415: "The Content-Type is not one this operation accepts",
    422: "The body is well-formed but not acceptable (schema, UID, card content)",
    429: "Too many failed logins from this address: wait the seconds Retry-After says",
}
_ETAG = {"ETag": {"description": "the card's ETag (the same as over CardDAV)",
                  "schema": {"type": "string"}}}
_LOCATION = {"Location": {"schema": {"type": "string"}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in (400, 401, 404, 429, *codes):
        if code == 304:
            out["304"] = {"description": _SENTENCES[304], "headers": _ETAG}
        else:
            out[str(code)] = {"description": _SENTENCES[code], "content": _PROBLEM}
    return out


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _contact_response(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "headers": headers, "content": {
        "application/json": {"schema": _ref("Contact")},
        "application/vcard+json": {"schema": {"type": "array"}},
        "text/vcard": {"schema": {"type": "string"}}}}


def _param(name: str, where: str, schema: dict[str, Any], description: str = "",
           required: bool = False, **extra: Any) -> dict[str, Any]:
    out = {"name": name, "in": where, "schema": schema, "required": required or where == "path"}
    if description:
        out["description"] = description
    return {**out, **extra}


_BOOK = _param("book", "path", {"type": "string", "pattern": "^[^/]+$"}, "address book name",
               example="contacts")
_ID = _param("id", "path", {"type": "string", "pattern": "^[^/]+$"},
             "contact id: the UID, or ~ and the base64url of the UID",
             example="4a162ce0-4bc6-4983-a194-0358f637341c")
_CAT_ID = _param("id", "path", {"type": "string", "pattern": "^[^/]+$"},
                 "category id: the name, or ~ and the base64url of the name", example="Family")
_IF_MATCH = _param("If-Match", "header", {"type": "string"},
                   "only if the contact's ETag is one of these (else 412)")
_IF_NONE_MATCH = _param("If-None-Match", "header", {"type": "string"},
                        "GET: 304 if unchanged; PUT: * refuses to overwrite (412)")
_CONTACT_BODY = {"required": True, "content": {
    "application/json": {"schema": _ref("ContactInput")},
    "application/vcard+json": {"schema": {"type": "array"}},
    "text/vcard": {"schema": {"type": "string"}}}}
_MEMBER_BODY = {"required": True,
                "content": {"application/json": {"schema": _ref("MemberIds")}}}
_CATEGORY_BODY = {"required": True,
                  "content": {"application/json": {"schema": _ref("CategoryInput")}}}
_LINKS: dict[str, Any] = {"type": "object", "required": ["name", "url", "contacts", "categories"],
          "properties": {k: {"type": "string"} for k in
                         ("name", "url", "contacts", "categories", "export", "import")}}
_CATEGORY_LIST = {"type": "object", "required": ["total", "items"], "properties": {
    "total": {"type": "integer"}, "items": {"type": "array", "items": _ref("Category")}}}
_MEMBERS = {"type": "object", "required": ["category", "total", "items", "pending"],
            "properties": {
                "category": {"type": "string"}, "total": {"type": "integer"},
                "pending": {"type": "array", "items": {"type": "string"}},
                "items": {"type": "array", "items": {
                    "type": "object", "required": ["id", "name", "url"],
                    "properties": {k: {"type": "string"} for k in ("id", "name", "url")}}}}}
_IDS = {"type": "array", "items": {"type": "string"}}
_LETTERS = {"type": "object", "required": ["sort", "total", "items"], "properties": {
    "sort": {"type": "string"}, "total": {"type": "integer"},
    "items": {"type": "array", "items": {
        "type": "object", "required": ["letter", "offset", "count"], "properties": {
            "letter": {"type": "string"}, "offset": {"type": "integer", "minimum": 0},
            "count": {"type": "integer", "minimum": 0}}}}}}


def _paths() -> dict[str, Any]:
    contacts_query = [
        _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000,
                                  "default": 50}, "page size"),
        _param("cursor", "query", {"type": "string"},
               "next_cursor of the previous page (opaque)"),
        _param("offset", "query", {"type": "integer", "minimum": 0, "maximum": 9_999_999},
               "start at this position of the whole list (not with cursor): a scrollbar "
               "dragged, or a letter's offset from /letters"),
        _param("sort", "query", {"type": "string", "default": "name", "enum": [
            "name", "family", "modified", "-name", "-family", "-modified"]},
               "order; - for descending"),
        _param("q", "query", {"type": "string", "maxLength": 200},
               "words matched in names and emails, ignoring case and accents; phone "
               "numbers match by digits; an exact email or phone number comes first"),
        _param("category", "query", {"type": "string"}, "only members of this category"),
        _param("fields", "query", {"type": "array", "minItems": 1,
                                   "items": {"type": "string", "enum": list(FIELDS)}},
               "only these fields of each contact (id always)", style="form",
               explode=False),
    ]
    fields = [contacts_query[-1]]
    return {
        "/api": {"get": {"operationId": "service", "summary": "The service document",
                         "responses": {"200": _json({"type": "object", "required": [
                             "user", "books"], "properties": {
                             "user": {"type": "string"}, "openapi": {"type": "string"},
                             "books": {"type": "array", "items": _LINKS}}},
                             "who you are, your address books and their collections"),
                             "401": _errors()["401"], "429": _errors()["429"]}}},
        "/api/openapi.json": {"get": {"operationId": "openapi", "security": [],
                                      "summary": "This document",
                                      "responses": {"200": _json({"type": "object"},
                                                                 "OpenAPI 3.1")}}},
        "/api/books/{book}": {"parameters": [_BOOK], "get": {
            "operationId": "getBook", "summary": "One address book and its collections",
            "responses": {"200": _json({**_LINKS, "properties": {
                **_LINKS["properties"], "contact_count": {"type": "integer"},
                "category_count": {"type": "integer"}}}, "the book"), **_errors()}}},
        "/api/books/{book}/contacts": {"parameters": [_BOOK], "get": {
            "operationId": "listContacts", "summary": "AllContacts: one page",
            "parameters": contacts_query,
            "responses": {"200": _json(_ref("ContactList"), "a page of contacts"),
                          **_errors()}},
            "post": {"operationId": "createContact", "summary": "Add a contact",
                     "parameters": fields, "requestBody": _CONTACT_BODY,
                     "responses": {"201": _contact_response("created", {**_ETAG, **_LOCATION}),
                                   **_errors(409, 413, 415, 422)}}},
        "/api/books/{book}/contacts/{id}": {"parameters": [_BOOK, _ID], "get": {
            "operationId": "getContact", "summary": "One contact (JSON, jCard or vCard)",
            "parameters": [*fields, _IF_NONE_MATCH],
            "responses": {"200": _contact_response("the contact", _ETAG), **_errors(304)}},
            "put": {"operationId": "putContact", "summary": "Replace (or create) a contact",
                    "parameters": [*fields, _IF_MATCH, _IF_NONE_MATCH],
                    "requestBody": _CONTACT_BODY, "responses": {
                        "200": _contact_response("replaced", _ETAG),
                        "201": _contact_response("created", {**_ETAG, **_LOCATION}),
                        **_errors(409, 412, 413, 415, 422)}},
            "patch": {"operationId": "patchContact", "summary": "Change some fields",
                      "parameters": [*fields, _IF_MATCH],
                      "requestBody": {"required": True, "content": {
                          "application/merge-patch+json": {"schema": _ref("ContactPatch")},
                          "application/json": {"schema": _ref("ContactPatch")}}},
                      "responses": {"200": _contact_response("changed", _ETAG),
                                    **_errors(409, 412, 413, 415, 422)}},
            "delete": {"operationId": "deleteContact", "summary": "Delete a contact",
                       "parameters": [_IF_MATCH],
                       "responses": {"204": {"description": "deleted"}, **_errors(412)}}},
        "/api/books/{book}/letters": {"parameters": [_BOOK], "get": {
            "operationId": "listLetters", "summary": "The A-Z index of the list by name",
            "description": "For each of #, A to Z and … (other scripts): the position of its "
                           "first contact in the list (sort=name or family, with the same "
                           "q and category) and how many there are. Letters follow the "
                           "Unicode collation: É is under E, Ł under L.",
            "parameters": [
                _param("sort", "query", {"type": "string", "default": "name",
                                         "enum": ["name", "family"]}, "the list's order"),
                *[p for p in contacts_query if p["name"] in ("q", "category")]],
            "responses": {"200": _json(_LETTERS, "the index"), **_errors()}}},
        "/api/books/{book}/contacts/{id}/photo": {"parameters": [_BOOK, _ID], "get": {
            "operationId": "getPhoto", "summary": "The photo's bytes",
            "description": "Served only as JPEG, PNG, GIF or WebP, the type taken from the "
                           "bytes (never from the card); any other photo is 404.",
            "responses": {"200": {"description": "the image", "headers": _ETAG, "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in IMAGE_TYPES}},
                "302": {"description": "the photo is a link (not fetched)",
                        "headers": _LOCATION},
                **_errors()}}},
        "/api/books/{book}/categories": {"parameters": [_BOOK], "get": {
            "operationId": "listCategories", "summary": "The Categories collection",
            "responses": {"200": _json(_CATEGORY_LIST, "every category"), **_errors()}},
            "post": {"operationId": "createCategory", "summary": "Create a category",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("NewCategory")}}},
                     "responses": {"201": _json(_ref("Category"), "created", _LOCATION),
                                   **_errors(409, 413, 415, 422)}}},
        "/api/books/{book}/categories/{id}": {"parameters": [_BOOK, _CAT_ID], "get": {
            "operationId": "getCategory", "summary": "One category",
            "responses": {"200": _json(_ref("Category"), "the category"), **_errors()}},
            "put": {"operationId": "putCategory",
                    "summary": "Create, rename or change a category",
                    "requestBody": _CATEGORY_BODY, "responses": {
                        "200": _json(_ref("Category"), "changed"),
                        "201": _json(_ref("Category"), "created", _LOCATION),
                        **_errors(409, 413, 415, 422)}},
            "delete": {"operationId": "deleteCategory",
                       "summary": "Delete a category (its contacts stay)",
                       "responses": {"204": {"description": "deleted"}, **_errors()}}},
        "/api/books/{book}/categories/{id}/members": {"parameters": [_BOOK, _CAT_ID], "get": {
            "operationId": "listMembers", "summary": "The contacts in a category",
            "responses": {"200": _json(_MEMBERS, "members"), **_errors()}},
            "post": {"operationId": "addMembers", "summary": "Add contacts to a category",
                     "requestBody": _MEMBER_BODY, "responses": {
                         "200": _json({"type": "object", "required": ["added", "not_found"],
                                       "properties": {"added": _IDS, "not_found": _IDS}},
                                      "added"), **_errors(413, 415, 422)}},
            "delete": {"operationId": "removeMembers",
                       "summary": "Take contacts out of a category (they stay)",
                       "parameters": [_param("id", "query", {"type": "array", "items": {
                           "type": "string", "minLength": 1}}, "member ids (or a JSON body)",
                           style="form", explode=True)],
                       "requestBody": {"required": False, "content": _MEMBER_BODY["content"]},
                       "responses": {"200": _json({"type": "object", "required": ["removed"],
                                                   "properties": {"removed": _IDS}},
                                                  "removed"), **_errors(413, 415, 422)}}},
        "/api/books/{book}/export": {"parameters": [_BOOK], "get": {
            "operationId": "exportBook", "summary": "The whole book (or a category) as a file",
            "parameters": [
                _param("format", "query", {"type": "string", "default": "vcard", "enum": [
                    "vcard", "vcard3", "vcard4", "jcard", "csv"]},
                    "vcard: the cards as stored; vcard3/vcard4 converted"),
                _param("category", "query", {"type": "string"}, "only this category")],
            "responses": {"200": {"description": "the file", "content": {
                "text/vcard": {"schema": {"type": "string"}},
                "application/vcard+json": {"schema": {"type": "array"}},
                "text/csv": {"schema": {"type": "string"}}}}, **_errors()}}},
        "/api/books/{book}/import": {"parameters": [_BOOK], "post": {
            "operationId": "importBook",
            "summary": "Store the contacts of a file (vCard, jCard, CSV, LDIF)",
            "parameters": [_param("format", "query", {
                "type": "string", "default": "auto", "enum": list(importers.FORMATS)})],
            "requestBody": {"required": True, "content": {
                media: {"schema": {"description": "the file's bytes, as they are"}}
                for media in IMPORT_TYPES}},
            "responses": {"200": _json({"type": "object", "required": [
                "format", "read", "added", "merged", "unchanged", "skipped", "merge_ids",
                "problems"], "properties": {
                "format": {"type": "string"}, "read": {"type": "integer"},
                "added": {"type": "integer"}, "merged": {"type": "integer"},
                "unchanged": {"type": "integer"}, "skipped": {"type": "integer"},
                "merge_ids": {"type": "array", "items": {"type": "string"}},
                "problems": {"type": "array", "items": {"type": "object"}}}}, "imported"),
                **_errors(413, 415, 422)}}},
    }



_MERGE = {"type": "object", "required": ["id", "url", "survivor", "reason", "time",
                                         "originals"], "properties": {
    "id": {"type": "string"}, "url": {"type": "string"},
    "survivor": {"type": "string", "description": "id of the merged contact"},
    "reason": {"type": "string"}, "time": {"type": "string", "format": "date-time"},
    "originals": {**_IDS, "description": "ids of the contacts an undo puts back"},
    "contact": _ref("Contact")}}
_MERGE_ID = _param("id", "path", {"type": "string", "pattern": "^[^/]+$"},
                   "merge id, from POST .../merges or the merges list")


def _dedupe_paths() -> dict[str, Any]:
    """Duplicates and merges (dedupe_views.py): ``cardfile dedupe`` over HTTP."""
    from cardfile.plugin.api.dedupe_views import MERGE_IDS

    cluster = {"type": "object", "required": ["ids", "sure", "reasons", "contacts"],
               "properties": {"ids": _IDS, "sure": {"type": "boolean", "description":
                                                    "false: names only partly alike; review"},
                              "reasons": {"type": "array", "items": {"type": "string"}},
                              "contacts": {"type": "array", "items": _ref("Contact")}}}
    return {
        "/api/books/{book}/duplicates": {"parameters": [_BOOK], "get": {
            "operationId": "listDuplicates",
            "summary": "Contacts that look like the same person (as cardfile dedupe)",
            "parameters": [_param("limit", "query", {"type": "integer", "minimum": 1,
                                                     "maximum": 1000, "default": 100},
                                  "at most this many clusters")],
            "responses": {"200": _json({"type": "object", "required": ["total", "items"],
                                        "properties": {"total": {"type": "integer"},
                                                       "merges": {"type": "string"},
                                                       "items": {"type": "array",
                                                                 "items": cluster}}},
                                       "sure clusters, then pairs to review"),
                          **_errors()}}},
        "/api/books/{book}/merges": {"parameters": [_BOOK], "get": {
            "operationId": "listMerges", "summary": "Merges that can be undone",
            "responses": {"200": _json({"type": "object", "required": ["total", "items"],
                                        "properties": {"total": {"type": "integer"},
                                                       "items": {"type": "array",
                                                                 "items": _MERGE}}},
                                       "newest first"), **_errors()}},
            "post": {"operationId": "createMerge",
                     "summary": "Merge contacts into one, keeping every value",
                     "requestBody": {"required": True, "content": {
                         "application/json": {"schema": MERGE_IDS}}},
                     "responses": {"201": _json(_MERGE, "merged", _LOCATION),
                                   **_errors(409, 413, 415, 422)}}},
        "/api/books/{book}/merges/{id}": {"parameters": [_BOOK, _MERGE_ID], "get": {
            "operationId": "getMerge", "summary": "One merge that can be undone",
            "responses": {"200": _json(_MERGE, "the merge"), **_errors()}},
            "delete": {"operationId": "undoMerge",
                       "summary": "Undo a merge: the original contacts come back as they were",
                       "parameters": [_param("force", "query", {"type": "string", "enum": [
                           "true", "false"], "default": "false"},
                           "undo even if the merged contact changed since")],
                       "responses": {"200": _json({"type": "object", "required": [
                           "id", "restored"], "properties": {"id": {"type": "string"},
                                                             "restored": _IDS}}, "undone"),
                                     **_errors(409)}}},
    }


def _with_write_refusals(paths: dict[str, Any]) -> dict[str, Any]:
    """Every change may be refused with 403 as cross-site (api/same_origin.py)."""
    for item in paths.values():
        for method in ("post", "put", "patch", "delete"):
            if method in item:
                item[method]["responses"].setdefault(
                    "403", {"description": _SENTENCES[403], "content": _PROBLEM})
    return paths


def document(prefix: str = "/api") -> dict[str, Any]:
    """The OpenAPI document; ``prefix`` is where the API is mounted (behind a proxy)."""
    from cardfile.plugin.api.openapi_history import history_paths

    base = prefix[: -len("/api")] if prefix.endswith("/api") else ""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Cardfile Contacts API", "version": "1",
                 "description": "AllContacts and Categories of your address books, over "
                                "the same data CardDAV clients sync. Errors are RFC 9457 "
                                "problem details."},
        "servers": [{"url": base or "/"}],
        "security": [{"basic": []}, {"bearer": []}],
        "paths": _with_write_refusals({**_paths(), **_dedupe_paths(), **history_paths(),
                                       **source_paths(_ref, _json, _errors, _param),
                                       **grant_schemas.paths()}),
        "components": {"schemas": {**SCHEMAS, **SOURCE_SCHEMAS, **grant_schemas.SCHEMAS},
                       "securitySchemes": {
                           "basic": {"type": "http", "scheme": "basic"},
                           "bearer": {"type": "http", "scheme": "bearer", "description":
                                      "an API token or the web page's session token"}}},
    }
