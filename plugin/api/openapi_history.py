"""The OpenAPI paths of the trash, history, restore-to and alerts (history_views.py)."""

from __future__ import annotations

from typing import Any

from cardfile.plugin.api.openapi import _BOOK, _ETAG, _ID, _LOCATION, _errors, _json, _param

_STR = {"type": "string"}
_WHO = {"type": "object", "description": "a change: when, who, with which client, as part "
                                         "of what (via)",
        "properties": {"time": {"type": "string", "format": "date-time"}, "user": _STR,
                       "client": _STR, "action": {"type": "string", "enum": [
                           "added", "changed", "deleted"]}, "via": _STR}}
_TRASH_ITEM = {"type": "object", "required": ["id", "uid", "name", "href", "url", "restore",
                                              "deleted"],
               "properties": {"id": _STR, "uid": _STR, "name": _STR, "href": _STR,
                              "url": _STR, "restore": _STR, "deleted": _WHO,
                              "contact": {"type": ["object", "null"]},
                              "vcard": {"type": ["string", "null"]}}}
_CHANGE = {"type": "object", "required": ["field", "old", "new"], "properties": {
    "field": _STR, "old": {"type": ["string", "null"]}, "new": {"type": ["string", "null"]}}}
_VERSION = {"type": "object", "required": ["version", "current", "made", "replaced", "changes",
                                           "restore"],
            "properties": {"version": {"type": "integer", "description": "0: the current card"},
                           "current": {"type": "boolean"}, "name": _STR,
                           "made": {"anyOf": [_WHO, {"type": "null"}]},
                           "replaced": {"anyOf": [_WHO, {"type": "null"}]},
                           "changes": {"type": "array", "items": _CHANGE},
                           "restore": {"type": ["string", "null"]}}}
_STEPS = {"type": "array", "items": {"type": "object", "properties": {"id": _STR,
                                                                      "name": _STR}}}
_ALERT = {"type": "object", "required": ["id", "url", "time", "restore_to", "client",
                                         "deleted", "emptied", "book_size"],
          "properties": {"id": {"type": "integer"}, "url": _STR,
                         "time": {"type": "string", "format": "date-time"},
                         "until": {"type": "string", "format": "date-time"},
                         "restore_to": {"type": "string", "format": "date-time",
                                        "description": "just before the mass change began"},
                         "restore_to_local": _STR, "user": _STR, "client": _STR,
                         "deleted": {"type": "integer"}, "emptied": {"type": "integer"},
                         "book_size": {"type": "integer"}}}
_VERSION_NO = _param("version", "path", {"type": "string", "pattern": "^[0-9]{1,18}$"},
                     "a version number from the contact's history")
_ALERT_ID = _param("id", "path", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "alert id")
_OWNER = ("Only for logins that may change the book (403 for a read-only one); a published "
          "category has none (404).")


def history_paths() -> dict[str, Any]:
    from cardfile.plugin.api.history_views import RESTORE_TO

    contact = {"description": "the contact", "headers": {**_ETAG, **_LOCATION},
               "content": {"application/json": {"schema": {"$ref":
                                                            "#/components/schemas/Contact"}}}}
    return {
        "/api/books/{book}/trash": {"parameters": [_BOOK], "get": {
            "operationId": "listTrash", "summary": "Deleted contacts, kept for a while",
            "description": _OWNER,
            "responses": {"200": _json({"type": "object", "required": ["total", "items"],
                                        "properties": {"total": {"type": "integer"},
                                                       "kept_days": {"type": "number"},
                                                       "items": {"type": "array",
                                                                 "items": _TRASH_ITEM}}},
                                       "newest first"), **_errors(403)}},
            "delete": {"operationId": "emptyTrash", "summary": "Purge every deleted contact",
                       "responses": {"200": _json({"type": "object", "properties": {
                           "purged": {"type": "integer"}}}, "purged"), **_errors()}}},
        "/api/books/{book}/trash/{id}": {"parameters": [_BOOK, _ID], "get": {
            "operationId": "getTrashItem", "summary": "A deleted contact, to preview",
            "responses": {"200": {"description": "the deleted contact", "content": {
                "application/json": {"schema": _TRASH_ITEM},
                "text/vcard": {"schema": _STR}}}, **_errors(403)}},
            "delete": {"operationId": "purgeTrashItem",
                       "summary": "Forget a deleted contact for good (and its versions)",
                       "responses": {"204": {"description": "purged"}, **_errors()}}},
        "/api/books/{book}/trash/{id}/restore": {"parameters": [_BOOK, _ID], "post": {
            "operationId": "restoreTrashItem",
            "summary": "Put a deleted contact back (same UID and href)",
            "responses": {"201": contact, **_errors(409, 410)}}},
        "/api/books/{book}/contacts/{id}/history": {"parameters": [_BOOK, _ID], "get": {
            "operationId": "contactHistory",
            "summary": "Every version of a contact in the retention window, newest first",
            "description": _OWNER + " Each version says who made it, when, with which "
                                    "client, and what changed, field by field.",
            "responses": {"200": _json({"type": "object", "required": ["id", "total", "items"],
                                        "properties": {"id": _STR, "uid": _STR,
                                                       "exists": {"type": "boolean"},
                                                       "since": _STR,
                                                       "total": {"type": "integer"},
                                                       "items": {"type": "array",
                                                                 "items": _VERSION}}},
                                       "the versions"), **_errors(403)}}},
        "/api/books/{book}/contacts/{id}/history/{version}/restore": {
            "parameters": [_BOOK, _ID, _VERSION_NO], "post": {
                "operationId": "restoreVersion",
                "summary": "Make an earlier version current (a new change)",
                "responses": {"200": contact, "201": contact, **_errors(409)}}},
        "/api/books/{book}/restore-to": {"parameters": [_BOOK], "post": {
            "operationId": "restoreTo",
            "summary": "Undo every change since a time (whole book or one category)",
            "description": "dry_run first shows what would change; the changes are "
                           "ordinary writes that every client syncs.",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": RESTORE_TO}}},
            "responses": {"200": _json({"type": "object", "required": [
                "time", "dry_run", "added", "changed", "deleted"], "properties": {
                "time": _STR, "local_time": _STR, "category": {"type": ["string", "null"]},
                "dry_run": {"type": "boolean"}, "added": {"type": "integer"},
                "changed": {"type": "integer"}, "deleted": {"type": "integer"},
                "to_add": _STEPS, "to_change": _STEPS, "to_delete": _STEPS,
                "failed": {"type": "array", "items": _STR}}}, "what was (or would be) "
                                                              "changed"),
                **_errors(413, 415, 422)}}},
        "/api/books/{book}/alerts": {"parameters": [_BOOK], "get": {
            "operationId": "listAlerts",
            "summary": "Mass deletions or emptied cards, with the time to restore to",
            "responses": {"200": _json({"type": "object", "required": ["total", "items"],
                                        "properties": {"total": {"type": "integer"},
                                                       "items": {"type": "array",
                                                                 "items": _ALERT}}},
                                       "undismissed alerts, newest first"),
                          **_errors(403)}}},
        "/api/books/{book}/alerts/{id}": {"parameters": [_BOOK, _ALERT_ID], "delete": {
            "operationId": "dismissAlert", "summary": "Dismiss an alert",
            "responses": {"204": {"description": "dismissed"}, **_errors()}}},
    }
