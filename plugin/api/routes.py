"""The API's URL map: which handler answers which method at which path.

One table, read by the dispatcher (405 with ``Allow`` for a known path and
an unknown method) and checked against the OpenAPI document by a test, so
the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from cardfile.plugin.api import (
    book_views,
    category_views,
    contact_views,
    dedupe_views,
    grant_views,
    history_views,
    share_views,
    source_views,
)

Handler = Callable[..., Any]
_SEGMENT = r"[^/]+"


@dataclass(frozen=True)
class Route:
    template: str  # the OpenAPI path, e.g. /api/books/{book}/contacts/{id}
    methods: dict[str, Handler]
    public: bool = False
    #: Devices, tokens, friends: only the owner's password or web session may use it.
    manages_grants: bool = False

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>{_SEGMENT})",
                       re.escape(self.template).replace(r"\{", "{").replace(r"\}", "}"))
        return re.compile(regex + "/?")

    def handler(self, method: str) -> Handler | None:
        if method == "HEAD":
            method = "GET"
        return self.methods.get(method)

    def allow(self) -> str:
        names = list(self.methods)
        if "GET" in names:
            names.append("HEAD")
        return ", ".join([*names, "OPTIONS"])


ROUTES = [
    Route("/api", {"GET": book_views.service}),
    Route("/api/openapi.json", {"GET": book_views.openapi_document}, public=True),
    Route("/api/books/{book}", {"GET": book_views.book_document}),
    Route("/api/books/{book}/contacts", {"GET": contact_views.list_contacts,
                                         "POST": contact_views.create_contact}),
    Route("/api/books/{book}/contacts/{id}", {"GET": contact_views.get_contact,
                                              "PUT": contact_views.put_contact,
                                              "PATCH": contact_views.patch_contact,
                                              "DELETE": contact_views.delete_contact}),
    Route("/api/books/{book}/letters", {"GET": contact_views.list_letters}),
    Route("/api/books/{book}/contacts/{id}/photo", {"GET": contact_views.get_photo}),
    Route("/api/books/{book}/categories", {"GET": category_views.list_categories,
                                           "POST": category_views.create_category}),
    Route("/api/books/{book}/categories/{id}", {"GET": category_views.get_category,
                                                "PUT": category_views.put_category,
                                                "DELETE": category_views.delete_category}),
    Route("/api/books/{book}/categories/{id}/members", {
        "GET": category_views.list_members, "POST": category_views.add_members,
        "DELETE": category_views.remove_members}),
    Route("/api/books/{book}/export", {"GET": book_views.export_book}),
    Route("/api/books/{book}/import", {"POST": book_views.import_book}),
    Route("/api/books/{book}/duplicates", {"GET": dedupe_views.list_duplicates}),
    Route("/api/books/{book}/merges", {"GET": dedupe_views.list_merges,
                                       "POST": dedupe_views.create_merge}),
    Route("/api/books/{book}/merges/{id}", {"GET": dedupe_views.get_merge,
                                            "DELETE": dedupe_views.undo_merge}),
    Route("/api/books/{book}/trash", {"GET": history_views.list_trash,
                                      "DELETE": history_views.empty_trash}),
    Route("/api/books/{book}/trash/{id}", {"GET": history_views.get_trash_item,
                                           "DELETE": history_views.purge_trash_item}),
    Route("/api/books/{book}/trash/{id}/restore", {"POST": history_views.restore_trash_item}),
    Route("/api/books/{book}/contacts/{id}/history", {"GET": history_views.contact_history}),
    Route("/api/books/{book}/contacts/{id}/history/{version}/restore",
          {"POST": history_views.restore_version}),
    Route("/api/books/{book}/restore-to", {"POST": history_views.restore_to}),
    Route("/api/books/{book}/alerts", {"GET": history_views.list_alerts}),
    Route("/api/books/{book}/alerts/{id}", {"DELETE": history_views.dismiss_alert}),
    Route("/api/sources", {"GET": source_views.list_sources, "POST": source_views.add_source}),
    Route("/api/sources/{name}", {"GET": source_views.get_source,
                                  "DELETE": source_views.remove_source}),
    Route("/api/sources/{name}/sync", {"POST": source_views.sync_source}),
    # Who may reach the contacts (grant_views.py): the password or the web session only.
    Route("/api/devices", {"GET": grant_views.list_devices, "POST": grant_views.add_device},
          manages_grants=True),
    Route("/api/devices/profile", {"POST": grant_views.device_profile}, manages_grants=True),
    Route("/api/devices/{id}", {"DELETE": grant_views.revoke_device}, manages_grants=True),
    Route("/api/tokens", {"GET": grant_views.list_tokens, "POST": grant_views.add_token},
          manages_grants=True),
    Route("/api/tokens/{id}", {"DELETE": grant_views.revoke_token}, manages_grants=True),
    Route("/api/session", {"POST": grant_views.sign_in, "DELETE": grant_views.sign_out},
          manages_grants=True),
    Route("/api/scopes", {"GET": grant_views.list_scopes}, manages_grants=True),
    Route("/api/me", {"GET": grant_views.get_me, "PUT": grant_views.put_me},
          manages_grants=True),
    Route("/api/friends", {"GET": grant_views.list_friends,
                           "POST": grant_views.invite_friend}, manages_grants=True),
    Route("/api/friends/{id}", {"DELETE": grant_views.end_friendship}, manages_grants=True),
    Route("/api/friends/{id}/accept", {"POST": grant_views.accept_friend},
          manages_grants=True),
    Route("/api/friends/{id}/decline", {"POST": grant_views.decline_friend},
          manages_grants=True),
    Route("/api/friends/{id}/copy", {"POST": grant_views.want_friend_copy},
          manages_grants=True),
    Route("/api/shares", {"GET": share_views.list_shares, "POST": share_views.offer_share},
          manages_grants=True),
    Route("/api/shares/{id}", {"DELETE": share_views.end_share}, manages_grants=True),
    Route("/api/shares/{id}/accept", {"POST": share_views.accept_share},
          manages_grants=True),
    Route("/api/shares/{id}/decline", {"POST": share_views.decline_share},
          manages_grants=True),
    Route("/api/grants", {"GET": grant_views.list_grants}, manages_grants=True),
    Route("/api/grants/{user}/{id}", {"DELETE": grant_views.revoke_grant},
          manages_grants=True),
]
_COMPILED = [(route, route.pattern) for route in ROUTES]


def _query_names() -> dict[tuple[str, str], frozenset[str]]:
    """(path template, method) -> the query parameters the OpenAPI document names."""
    from cardfile.plugin.api.openapi import document

    out = {}
    for template, item in document()["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                out[(template, method.upper())] = frozenset(
                    p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
    return out


_QUERY = _query_names()


def query_names(route: Route, method: str) -> frozenset[str]:
    return _QUERY.get((route.template, "GET" if method == "HEAD" else method), frozenset())


def match(path: str) -> tuple[Route | None, dict[str, str]]:
    for route, pattern in _COMPILED:
        found = pattern.fullmatch(path)
        if found:
            return route, found.groupdict()
    return None, {}


def status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"
