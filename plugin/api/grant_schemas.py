"""Bodies and OpenAPI paths of devices, tokens, the web session, me and friends.

Kept beside ``schemas.py``/``openapi.py`` (which merge these in) so the
grants part of the API reads as one piece; the same schemas validate the
bodies (``validate``) and document them.
"""

from __future__ import annotations

from typing import Any

from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.schema_check import SchemaCheck
from cardfile.plugin.api.schemas import NAME_PATTERN
from cardfile.plugin.contacts.grants.properties import SCOPES

_NAME = {"type": "string", "minLength": 1, "maxLength": 100,
         "pattern": NAME_PATTERN}  # one linear pattern for every name (schemas.py says why)
_BOOKS = {"type": "array", "maxItems": 20,
          "items": {"type": "string", "minLength": 1, "maxLength": 200,
                    "pattern": "^[^/\\u0000-\\u001f.][^/\\u0000-\\u001f]*$"}}
_SCOPE_LIST = {"type": "array", "maxItems": 20, "items": {"type": "string",
                                                          "enum": list(SCOPES)}}
#: A user of this server, or a handle (name@host: see friends.resolve).
_WHO = {"type": "string", "minLength": 1, "maxLength": 200,
        "description": "a user name, or a handle name@host naming a user of this server"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "NewDevice": {"type": "object", "additionalProperties": False, "required": ["name"],
                  "properties": {"name": _NAME, "read_only": {"type": "boolean"},
                                 "books": _BOOKS,
                                 "protocol": {"type": "string",
                                              "enum": ["carddav", "api", "both"]}}},
    "NewToken": {"type": "object", "additionalProperties": False, "required": ["name"],
                 "properties": {"name": _NAME,
                                "scope": {"type": "string", "enum": ["read", "write"]},
                                "properties": {**_SCOPE_LIST, "description":
                                               "only these properties (name is added)"},
                                "books": _BOOKS},
                 # a property-limited token only reads (its writes could not keep what
                 # it cannot see)
                 "if": {"required": ["properties"]},
                 "then": {"properties": {"scope": {"const": "read"}}}},
    "Grant": {"type": "object", "required": ["id", "kind", "name", "user"],
              "properties": {"id": {"type": "string"}, "kind": {"type": "string"},
                             "name": {"type": "string"}, "user": {"type": "string"}}},
    "MeInput": {"type": "object", "additionalProperties": False,
                "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 300},
                               "book": {"type": "string", "minLength": 1, "maxLength": 200},
                               "share": _SCOPE_LIST}},
    "Me": {"type": "object", "required": ["book", "uid", "id", "share", "shared"],
           "properties": {"book": {"type": "string"}, "uid": {"type": "string"},
                          "id": {"type": "string", "description": "the contact's API id"},
                          "share": {**_SCOPE_LIST, "description": "chosen by the owner"},
                          "shared": {**_SCOPE_LIST, "description":
                                     "what friends see: share, name and photo"}}},
    "Scopes": {"type": "object", "required": ["items", "friends_always"],
               "properties": {
                   "items": {"type": "array", "items": {
                       "type": "object", "required": ["name", "properties"],
                       "properties": {"name": {"type": "string", "enum": list(SCOPES)},
                                      "properties": {"type": "array",
                                                     "items": {"type": "string"}}}}},
                   "friends_always": _SCOPE_LIST}},
    "Invitation": {"type": "object", "additionalProperties": False, "required": ["user"],
                   "properties": {"user": _WHO}},
    "ShareOffer": {"type": "object", "additionalProperties": False,
                   "required": ["user", "book"],
                   "properties": {"user": _WHO, "book": _BOOKS["items"],
                                  "category": _NAME,
                                  "access": {"type": "string", "enum": ["r", "rw"],
                                             "default": "r"}}},
    "Share": {"type": "object", "required": ["id", "friend", "status", "direction", "owner",
                                             "book", "access"],
              "properties": {**{k: {"type": ["string", "null"]} for k in (
                  "id", "friend", "status", "direction", "created", "expires", "since",
                  "owner", "book", "category", "path")},
                  "access": {"type": "string", "enum": ["r", "rw"]}}},
    "Friend": {"type": "object", "required": ["id", "friend", "status", "direction"],
               "properties": {**{k: {"type": ["string", "null"]} for k in (
                   "id", "friend", "status", "direction", "created", "expires", "since")},
                   "copy_deleted": {"type": "boolean", "description":
                                    "the friend deleted their copy of your card"}}},
}
_VALIDATORS = {name: SchemaCheck(schema) for name, schema in SCHEMAS.items()}


def validate(data: Any, name: str) -> dict[str, Any]:
    error = _VALIDATORS[name].first_error(data)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the body"
        raise Problem(422, f"{where}: {error.message[:200]}")
    assert isinstance(data, dict)
    return data


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


_PROBLEM = {"application/problem+json": {"schema": _ref("Problem")}}


def _errors(*codes: int) -> dict[str, Any]:
    sentences = {400: "Malformed request", 401: "Not logged in",
                 403: "Not with this device or token: sign in with your password",
                 404: "No such grant, friend or user", 409: "Conflicts with what is there",
                 415: "Send JSON", 422: "The body does not fit the schema",
                 429: "Too many failed logins from this address"}
    return {str(c): {"description": sentences[c], "content": _PROBLEM}
            for c in (400, 401, 403, 429, *codes)}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_LIST = {"type": "object", "required": ["items"],
         "properties": {"items": {"type": "array", "items": _ref("Grant")}}}
_FRIENDS = {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": _ref("Friend")}}}
_SHARES = {"type": "object", "required": ["items"],
           "properties": {"items": {"type": "array", "items": _ref("Share")}}}
_ISSUED: dict[str, Any] = {"type": "object", "required": ["id", "secret"],
           "properties": {"id": {"type": "string"}, "secret": {"type": "string", "description":
                                                           "shown once; only its hash is kept"}}}


def paths() -> dict[str, Any]:
    return {
        "/api/devices": {
            "get": {"operationId": "listDevices", "summary": "Your device passwords",
                    "responses": {"200": _ok(_LIST, "devices"), **_errors()}},
            "post": {"operationId": "addDevice",
                     "summary": "A new device password (shown once)",
                     "requestBody": _body("NewDevice"),
                     "responses": {"201": _ok(_ISSUED, "made"), **_errors(415, 422)}}},
        "/api/devices/profile": {"post": {
            "operationId": "addDeviceProfile",
            "summary": "An Apple .mobileconfig setting up CardDAV with a new device password",
            "requestBody": _body("NewDevice"),
            "responses": {"201": {"description": "the profile", "content": {
                "application/x-apple-aspen-config": {"schema": {"type": "string"}}}},
                **_errors(415, 422)}}},
        "/api/devices/{id}": {"parameters": [_ID], "delete": {
            "operationId": "revokeDevice", "summary": "Revoke one device password",
            "responses": {"204": {"description": "revoked"}, **_errors(404)}}},
        "/api/tokens": {
            "get": {"operationId": "listTokens", "summary": "Your applications' API tokens",
                    "responses": {"200": _ok(_LIST, "tokens"), **_errors()}},
            "post": {"operationId": "addToken",
                     "summary": "A new API token (shown once), maybe property-limited",
                     "requestBody": _body("NewToken"),
                     "responses": {"201": _ok(_ISSUED, "made"), **_errors(415, 422)}}},
        "/api/tokens/{id}": {"parameters": [_ID], "delete": {
            "operationId": "revokeToken", "summary": "Revoke one API token",
            "responses": {"204": {"description": "revoked"}, **_errors(404)}}},
        "/api/session": {
            "post": {"operationId": "signIn",
                     "summary": "A short-lived session token for the web page "
                                "(Authorization: Bearer), made with the password",
                     "responses": {"201": _ok({**_ISSUED, "properties": {
                         **_ISSUED["properties"], "expires": {"type": "string"}}},
                         "signed in"), **_errors()}},
            "delete": {"operationId": "signOut", "summary": "End this session token",
                       "responses": {"204": {"description": "signed out"}, **_errors()}}},
        "/api/scopes": {"get": {
            "operationId": "listScopes",
            "summary": "The property scopes a token or the me card can be limited to",
            "responses": {"200": _ok(_ref("Scopes"), "scopes"), **_errors()}}},
        "/api/me": {
            "get": {"operationId": "getMe",
                    "summary": "Your own contact and what friends see of it",
                    "responses": {"200": _ok({"oneOf": [_ref("Me"), {"type": "null"}]},
                                             "the me card (null: not chosen yet)"),
                                  **_errors()}},
            "put": {"operationId": "putMe",
                    "summary": "Choose your own contact and what friends see",
                    "requestBody": _body("MeInput"),
                    "responses": {"200": _ok(_ref("Me"), "chosen"),
                                  **_errors(404, 409, 415, 422)}}},
        "/api/friends": {
            "get": {"operationId": "listFriends",
                    "summary": "Your friends and invitations (sent and received)",
                    "responses": {"200": _ok(_FRIENDS, "friends"), **_errors()}},
            "post": {"operationId": "inviteFriend", "summary": "Invite a user of this server",
                     "requestBody": _body("Invitation"),
                     "responses": {"201": _ok(_ref("Friend"), "invited"),
                                   **_errors(404, 409, 415, 422)}}},
        "/api/friends/{id}": {"parameters": [_ID], "delete": {
            "operationId": "endFriendship",
            "summary": "End a friendship or withdraw an invitation",
            "parameters": [{"name": "keep", "in": "query", "required": False, "schema": {
                "type": "string", "enum": ["true", "false"], "default": "true"},
                "description": "keep their card as a plain contact (true) or remove it"}],
            "responses": {"200": _ok({"type": "object"}, "ended"), **_errors(404)}}},
        "/api/friends/{id}/accept": {"parameters": [_ID], "post": {
            "operationId": "acceptFriend", "summary": "Accept an invitation",
            "responses": {"200": _ok(_ref("Friend"), "friends now"), **_errors(404, 409)}}},
        "/api/friends/{id}/decline": {"parameters": [_ID], "post": {
            "operationId": "declineFriend",
            "summary": "Decline an invitation (the inviter sees only 'not accepted')",
            "responses": {"200": _ok(_ref("Friend"), "declined"), **_errors(404, 409)}}},
        "/api/friends/{id}/copy": {"parameters": [_ID], "post": {
            "operationId": "wantFriendCopy",
            "summary": "Get the friend's card again after deleting your copy of it",
            "responses": {"200": _ok(_ref("Friend"), "copied"), **_errors(404, 409)}}},
        "/api/shares": {
            "get": {"operationId": "listShares",
                    "summary": "Books and categories you share and that are shared with you",
                    "responses": {"200": _ok(_SHARES, "shares"), **_errors()}},
            "post": {"operationId": "offerShare",
                     "summary": "Share a book, or one category of it, with a user of this "
                                "server (read-only unless access is rw)",
                     "requestBody": _body("ShareOffer"),
                     "responses": {"201": _ok(_ref("Share"), "offered"),
                                   **_errors(404, 409, 415, 422)}}},
        "/api/shares/{id}": {"parameters": [_ID], "delete": {
            "operationId": "endShare",
            "summary": "End a share or withdraw an offer (either side); the shared book "
                       "goes at once",
            "responses": {"200": _ok({"type": "object"}, "ended"), **_errors(404)}}},
        "/api/shares/{id}/accept": {"parameters": [_ID], "post": {
            "operationId": "acceptShare",
            "summary": "Accept a share: the book appears among yours (path)",
            "responses": {"200": _ok(_ref("Share"), "shared now"), **_errors(404, 409)}}},
        "/api/shares/{id}/decline": {"parameters": [_ID], "post": {
            "operationId": "declineShare",
            "summary": "Decline a share (the owner sees only 'not accepted')",
            "responses": {"200": _ok(_ref("Share"), "declined"), **_errors(404, 409)}}},
        "/api/grants": {"get": {
            "operationId": "listGrants",
            "summary": "Every grant: yours, or everyone's for an admin ([auth] admins)",
            "responses": {"200": _ok(_LIST, "grants"), **_errors()}}},
        "/api/grants/{user}/{id}": {"parameters": [
            {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}},
            _ID], "delete": {
            "operationId": "revokeGrant",
            "summary": "Revoke a grant, a share included (an admin: anyone's)",
            "responses": {"204": {"description": "revoked"}, **_errors(404)}}},
    }
