"""Devices, tokens, the web session, the me card and friends over the JSON API.

The same grants model as the CLI (plugin/contacts/grants). These addresses
change who may reach the user's contacts, so only the owner's password or
the web page's session may use them (``Route.manages_grants``): a device
password or an app token cannot make itself more devices.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from cardfile.plugin.api import ids
from cardfile.plugin.api.context import Context
from cardfile.plugin.api.grant_schemas import validate
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.web import Response
from cardfile.plugin.contacts.grants import core, friends, properties, shares

_SESSION_KINDS = ("session",)


def _issued(ctx: Context, issued: core.Issued) -> Response:
    return Response.json({**issued.grant.public(), "secret": issued.secret}, status=201)


def _listed(grants: list[core.Grant]) -> Response:
    return Response.json({"items": [g.public() for g in grants]})


# -- devices -------------------------------------------------------------------
def list_devices(ctx: Context) -> Response:
    return _listed(ctx.grants.listed(ctx.user, ("device",)))


def add_device(ctx: Context) -> Response:
    body = validate(ctx.request.json(), "NewDevice")
    protocol = body.get("protocol", "both")
    issued = ctx.grants.issue(ctx.user, "device", body["name"],
                              read_only=bool(body.get("read_only")),
                              books=body.get("books") or [],
                              protocols=None if protocol == "both" else [protocol])
    return _issued(ctx, issued)


def revoke_device(ctx: Context, id: str) -> Response:  # noqa: A002 (the route's name)
    ctx.grants.revoke(ctx.user, id, ("device",))
    return Response.empty(204)


# -- tokens --------------------------------------------------------------------
def list_tokens(ctx: Context) -> Response:
    return _listed(ctx.grants.listed(ctx.user, ("token",)))


def add_token(ctx: Context) -> Response:
    body = validate(ctx.request.json(), "NewToken")
    scopes = body.get("properties")
    if scopes is not None:
        scopes = sorted({*scopes, "name"})
    issued = ctx.grants.issue(ctx.user, "token", body["name"],
                              read_only=body.get("scope", "read") == "read",
                              books=body.get("books") or [], protocols=["api"],
                              scopes=scopes)
    return _issued(ctx, issued)


def revoke_token(ctx: Context, id: str) -> Response:  # noqa: A002
    ctx.grants.revoke(ctx.user, id, ("token",))
    return Response.empty(204)


# -- the web page's session ------------------------------------------------------
def sign_in(ctx: Context) -> Response:
    """A session token for the page; the password then stays out of the tab."""
    issued = ctx.grants.issue(ctx.user, "session", "web page",
                              hours=core.SESSION_HOURS)
    return _issued(ctx, issued)


def sign_out(ctx: Context) -> Response:
    if ctx.grant is not None and ctx.grant.kind == "session":
        with contextlib.suppress(Exception):
            ctx.grants.revoke(ctx.user, ctx.grant.id, _SESSION_KINDS)
    return Response.empty(204)


# -- property scopes -----------------------------------------------------------------
def list_scopes(ctx: Context) -> Response:
    """The property scopes a token or a me card can be limited to, for the page's boxes."""
    return Response.json({
        "items": [{"name": name, "properties": sorted(props)}
                  for name, props in properties.SCOPES.items()],
        "friends_always": list(properties.FRIEND_ALWAYS)})


# -- me and friends ----------------------------------------------------------------
def _me(mine: dict[str, Any]) -> dict[str, Any]:
    """The me record as the API shows it: with the contact's API id beside its UID."""
    return {**mine, "id": ids.encode(str(mine["uid"])),
            "shared": friends.shared_scopes(mine)}


def get_me(ctx: Context) -> Response:
    mine = friends.me(ctx.grants, ctx.user)
    return Response.json(_me(mine) if mine else None)


def put_me(ctx: Context) -> Response:
    from cardfile.plugin.api.context import decode_id

    body = validate(ctx.request.json(), "MeInput")
    mine = friends.me(ctx.grants, ctx.user)
    if "id" in body:
        mine = friends.set_me(ctx.grants, ctx.storage, ctx.user, decode_id(body["id"]),
                              body.get("book") or friends.DEFAULT_BOOK)
    if "share" in body:
        mine = friends.share(ctx.grants, ctx.storage, ctx.user, body["share"])
    if not mine:
        raise Problem(409, "choose your own contact first: send {\"id\": ...}")
    return Response.json(_me(mine))


def list_friends(ctx: Context) -> Response:
    return Response.json({"items": friends.listing(ctx.grants, ctx.user)})


def invite_friend(ctx: Context) -> Response:
    from cardfile.plugin.dav.host_check import own_names

    body = validate(ctx.request.json(), "Invitation")
    found = friends.invite(ctx.grants, ctx.user, body["user"], _users(ctx),
                           own_hosts=own_names(ctx.storage.configuration))
    return Response.json(found, status=201)


def want_friend_copy(ctx: Context, id: str) -> Response:  # noqa: A002
    return Response.json(friends.want_copy(ctx.grants, ctx.storage, ctx.user, id))


def accept_friend(ctx: Context, id: str) -> Response:  # noqa: A002
    return Response.json(friends.answer(ctx.grants, ctx.storage, ctx.user, id, True))


def decline_friend(ctx: Context, id: str) -> Response:  # noqa: A002
    return Response.json(friends.answer(ctx.grants, ctx.storage, ctx.user, id, False))


def end_friendship(ctx: Context, id: str) -> Response:  # noqa: A002
    keep = ctx.request.arg("keep", "true")
    if keep not in ("true", "false"):
        raise Problem(400, "keep must be true or false")
    return Response.json(friends.end(ctx.grants, ctx.storage, ctx.user, id, keep == "true"))


# -- every grant (admins) ----------------------------------------------------------
def list_grants(ctx: Context) -> Response:
    if ctx.user in ctx.admins:
        return _listed(ctx.grants.list_all())
    return _listed(ctx.grants.listed(ctx.user))


def revoke_grant(ctx: Context, user: str, id: str) -> Response:  # noqa: A002
    if user != ctx.user and ctx.user not in ctx.admins:
        raise Problem(404, f"you have no grant {id!r}")
    found = ctx.grants.get(user, id)
    if found is not None and found.kind == "share":
        shares.revoke(ctx.grants, ctx.storage, user, id)  # its shared book goes too
    else:
        ctx.grants.revoke(user, id, ("device", "token", "session"))
    return Response.empty(204)


def _users(ctx: Context) -> list[str]:
    """The users of this server (names only, from htpasswd), for invitations."""
    try:
        path = Path(str(ctx.storage.configuration.get("auth", "htpasswd_filename")))
        lines = path.read_text().splitlines()
    except (OSError, KeyError):
        return []
    return [line.split(":", 1)[0] for line in lines if ":" in line and not
            line.startswith("#")]


# -- an Apple configuration profile with a fresh device password ------------------------
PROFILE_TYPE = "application/x-apple-aspen-config"


def device_profile(ctx: Context) -> Response:
    """A ``.mobileconfig`` that sets up the CardDAV account with a new device password.

    The password is made for this profile only (a CardDAV device, revocable
    like any other) and is in the file: hand it to the device and delete it.
    """
    import plistlib
    import uuid
    from urllib.parse import urlsplit

    body = validate(ctx.request.json(), "NewDevice")
    issued = ctx.grants.issue(ctx.user, "device", body["name"],
                              read_only=bool(body.get("read_only")),
                              books=body.get("books") or [], protocols=["carddav"])
    where = urlsplit(ctx.request.base)
    tls = where.scheme == "https"
    account = {
        "PayloadType": "com.apple.carddav.account", "PayloadVersion": 1,
        "PayloadIdentifier": f"org.cardfile.carddav.{issued.grant.id}",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadDisplayName": "Cardfile contacts",
        "CardDAVAccountDescription": f"Cardfile ({ctx.user})",
        "CardDAVHostName": where.hostname or "localhost",
        "CardDAVPort": where.port or (443 if tls else 80),
        "CardDAVUseSSL": tls, "CardDAVPrincipalURL": f"/{ctx.user}/",
        "CardDAVUsername": ctx.user, "CardDAVPassword": issued.secret,
    }
    profile = {
        "PayloadType": "Configuration", "PayloadVersion": 1,
        "PayloadIdentifier": f"org.cardfile.profile.{issued.grant.id}",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadDisplayName": f"Cardfile: {issued.grant.name}",
        "PayloadDescription": "Your contacts over CardDAV, with a password for this "
                              "device only (revoke it in Cardfile's device list).",
        "PayloadContent": [account],
    }
    data = plistlib.dumps(profile)
    name = "".join(ch for ch in issued.grant.name if ch.isalnum()) or "device"
    return Response(201, data, PROFILE_TYPE, [
        ("Content-Disposition", f'attachment; filename="cardfile-{name}.mobileconfig"'),
        ("X-Cardfile-Device", issued.grant.id)])
