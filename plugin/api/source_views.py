"""Connected sources over HTTP: what ``cardfile sources`` does, for the web page and scripts.

The same core (``contacts/sources``) as the CLI and the server's refresher.
Two differences, both for safety: a source added here must be an http(s)
URL (a local folder is the server machine's disk: only its owner, at the
CLI, may connect one), and a password sent here is stored encrypted and
never appears in any answer. The schemas and paths are defined here and
published by ``openapi.py``, as ``dedupe_views`` does.
"""

from __future__ import annotations

from typing import Any

from cardfile.plugin.api.context import Context
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.schema_check import SchemaCheck
from cardfile.plugin.api.web import Response
from cardfile.plugin.contacts.sources import connect, registry, sync
from cardfile.plugin.contacts.sources.fetch import SourceFailure

_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,39}$"}
SOURCE_INPUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 8, "maxLength": 2000, "pattern": "^https?://",
                "description": "a CardDAV server or address book, or a vCard/CSV file"},
        "name": {**_NAME, "description": "default: from the URL; the book is source-NAME"},
        "interval": {"type": "integer", "minimum": registry.MIN_INTERVAL,
                     "maximum": 7 * 86400, "default": registry.DEFAULT_INTERVAL},
        "into": {"type": "string", "enum": list(registry.INTO), "default": "own"},
        "username": {"type": "string", "maxLength": 500},
        "password": {"type": "string", "maxLength": 2000, "writeOnly": True,
                     "description": "stored encrypted; never shown back"},
    },
}
_COUNTS = {"type": "object", "properties": {k: {"type": "integer"} for k in (
    "added", "updated", "removed", "unchanged", "skipped")}}
SOURCE: dict[str, Any] = {
    "type": "object", "required": ["name", "kind", "url", "status", "cards"],
    "properties": {
        "name": {"type": "string"}, "kind": {"type": "string", "enum": list(registry.KINDS)},
        "url": {"type": "string"}, "book": {"type": "string"},
        "book_url": {"type": ["string", "null"]},
        "into": {"type": "string"}, "interval": {"type": "integer"},
        "username": {"type": ["string", "null"]}, "has_password": {"type": "boolean"},
        "status": {"type": "string", "description": "ok, needs sign-in again, unreachable, "
                                                     "failed, or not synced yet"},
        "message": {"type": "string"},
        "last_sync": {"type": ["number", "null"]}, "last_success": {"type": ["number", "null"]},
        "next_sync": {"type": ["number", "null"]}, "cards": {"type": "integer"},
        "incremental": {"type": "boolean"},
        "seconds": {"type": ["number", "null"]}, "requests": {"type": ["integer", "null"]},
        "problems": {"type": "array", "items": {"type": "string"}}, "counts": _COUNTS,
        "url_api": {"type": "string"},
    },
}
_INPUT = SchemaCheck(SOURCE_INPUT)


def _status(ctx: Context, source: registry.Source, folder: str) -> dict[str, Any]:
    return {**sync.status_of(source, folder), "url_api": f"{ctx.prefix}/sources/{source.name}"}


def list_sources(ctx: Context) -> Response:
    items = [_status(ctx, s, f) for s, f in registry.sources_of(ctx.storage, ctx.user)]
    return Response.json({"total": len(items), "items": items})


def add_source(ctx: Context) -> Response:
    data = ctx.request.json()
    error = _INPUT.first_error(data)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the body"
        raise Problem(422, f"{where}: {error.message[:200]}")
    try:
        source = connect.add(ctx.storage, ctx.user, data["url"], data.get("name"),
                             int(data.get("interval", registry.DEFAULT_INTERVAL)),
                             data.get("into", "own"), data.get("username", ""),
                             data.get("password", ""), allow_folders=False)
    except SourceFailure as e:  # the source's answer, not this request's login: never 401
        raise Problem(422, f"could not connect: {e.reason}") from None
    sync.refresh(ctx.storage, ctx.user, source.name)
    status = _status(ctx, *registry.find(ctx.storage, ctx.user, source.name))
    return Response.json(status, 201, headers=[("Location", status["url_api"])])


def get_source(ctx: Context, name: str) -> Response:
    return Response.json(_status(ctx, *registry.find(ctx.storage, ctx.user, name)))


def sync_source(ctx: Context, name: str) -> Response:
    sync.refresh(ctx.storage, ctx.user, name)
    return Response.json(_status(ctx, *registry.find(ctx.storage, ctx.user, name)))


def remove_source(ctx: Context, name: str) -> Response:
    source = registry.find(ctx.storage, ctx.user, name)[0]
    if source.into == "main":
        from cardfile.plugin.contacts.sources import consolidate

        consolidate.disconnect(ctx.storage, source)
    registry.remove(ctx.storage, ctx.user, name)
    return Response.empty(204)


def source_paths(ref: Any, json: Any, errors: Any, param: Any) -> dict[str, Any]:
    """The OpenAPI paths of this module (``openapi.py`` passes its helpers)."""
    name = param("name", "path", _NAME, "the source's name", example="work")
    source = {"$ref": "#/components/schemas/Source"}
    return {
        "/api/sources": {
            "get": {"operationId": "listSources", "summary": "Connected sources and their status",
                    "responses": {"200": json({"type": "object", "required": ["total", "items"],
                                               "properties": {"total": {"type": "integer"},
                                                              "items": {"type": "array",
                                                                        "items": source}}},
                                              "every source of the user"), **errors()}},
            "post": {"operationId": "addSource",
                     "summary": "Connect a source (http(s) only) and sync it once",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/SourceInput"}}}},
                     "responses": {"201": json(source, "connected; the status of its first "
                                                       "sync"), **errors(409, 413, 415, 422)}}},
        "/api/sources/{name}": {"parameters": [name], "get": {
            "operationId": "getSource", "summary": "One source: last sync, counts, problems",
            "responses": {"200": json(source, "the source"), **errors()}},
            "delete": {"operationId": "removeSource",
                       "summary": "Disconnect: its book and the values it brought go; "
                                  "yours stay",
                       "responses": {"204": {"description": "removed"}, **errors()}}},
        "/api/sources/{name}/sync": {"parameters": [name], "post": {
            "operationId": "syncSource", "summary": "Refresh the source now",
            "responses": {"200": json(source, "the status after this refresh"),
                          **errors()}}},
    }


SCHEMAS = {"Source": SOURCE, "SourceInput": SOURCE_INPUT}
