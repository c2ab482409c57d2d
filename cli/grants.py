"""``cardfile devices``, ``tokens`` and ``grants``: who may reach your contacts.

Thin commands over the grants model (plugin/contacts/grants). The CLI runs on
the server's data folder, so it acts as an admin: ``--user`` picks whose
grants (default: the only user, else your login name), and ``grants list``
shows everyone's. A new device password or token is printed once, on
standard output, and never again: only its bcrypt hash is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from cardfile.cli import users
from cardfile.cli.options import _settings, common_options, existing_user
from cardfile.plugin.contacts.grants.core import Grant, Grants
from cardfile.plugin.contacts.grants.store import GrantStore
from cardfile.plugin.refused import Refused


def user_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--user", "user_name", default=None,
                        help="Whose grants (default: the only user, else your login "
                             "name).")(func)
    return common_options(func)


def open_grants(data_dir: str | None, config_file: str | None,
                user_name: str | None) -> tuple[Grants, str]:
    """The grants of the data folder and the user to act for (who must exist)."""
    settings = _settings(data_dir, config_file)
    if not settings.data_dir.is_dir():
        raise click.ClickException(
            f"there is no Cardfile data folder at {settings.data_dir}; check --data-dir")
    return Grants(GrantStore(settings.data_dir)), existing_user(settings, user_name,
                                                                 contacts_suffice=False)


def describe(grant: Grant) -> str:
    record = grant.record
    limits = []
    if grant.kind in ("device", "token"):
        limits.append("read-only" if grant.read_only else "read-write")
        if grant.books:
            limits.append("book " + ",".join(grant.books))
        if grant.kind == "device" and len(grant.protocols) == 1:
            limits.append(grant.protocols[0] + " only")
        if grant.properties is not None:
            limits.append("properties " + ",".join(grant.properties))
    if grant.expires:
        limits.append(f"expires {record.get('expires')}")
    used = record.get("last_used") or "never used"
    client = f" by {record['client']}" if record.get("client") else ""
    return (f"{grant.id}  {grant.name}  ({'; '.join(limits)})  created {record.get('created')}"
            f", last used {used}{client}")


def _print(grants: list[Grant], as_json: bool, empty: str, with_user: bool = False) -> None:
    if as_json:
        click.echo(json.dumps([g.public() for g in grants], indent=1, ensure_ascii=False))
        return
    if not grants:
        click.echo(empty, err=True)
    for grant in grants:
        click.echo((f"{grant.user}  {grant.kind}  " if with_user else "") + describe(grant))


# -- devices -------------------------------------------------------------------
@click.group("devices")
def devices() -> None:
    """Per-device passwords: one for each phone or app, revocable one at a time."""


@devices.command("add")
@user_options
@click.argument("name")
@click.option("--read-only", is_flag=True, help="The device may read but never change.")
@click.option("--book", "books", multiple=True, help="Only this address book (repeatable).")
@click.option("--carddav", "protocol", flag_value="carddav", help="CardDAV only.")
@click.option("--api", "protocol", flag_value="api", help="The JSON API only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the password).")
def devices_add(data_dir: str | None, config_file: str | None, user_name: str | None,
                name: str, read_only: bool, books: tuple[str, ...], protocol: str | None,
                as_json: bool) -> None:
    """Make a password for one device; it is shown once."""
    grants, user = open_grants(data_dir, config_file, user_name)
    issued = grants.issue(user, "device", name, read_only=read_only, books=list(books),
                          protocols=[protocol] if protocol else None)
    if as_json:
        click.echo(json.dumps({**issued.grant.public(), "password": issued.secret}, indent=1))
        return
    click.echo(f"Device {issued.grant.name!r} ({issued.grant.id}) of {user}:", err=True)
    click.echo(f"  user name: {user}", err=True)
    click.echo(f"  password:  {issued.secret}")
    click.echo("Give it to the device now: it is not shown again. Revoke it with "
               f"'cardfile devices revoke {issued.grant.id}'.", err=True)


@devices.command("list")
@user_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def devices_list(data_dir: str | None, config_file: str | None, user_name: str | None,
                 as_json: bool) -> None:
    """The user's devices with their limits, last use and client."""
    grants, user = open_grants(data_dir, config_file, user_name)
    _print(grants.listed(user, ("device",)), as_json, f"{user} has no device passwords")


@devices.command("revoke")
@user_options
@click.argument("ident")
def devices_revoke(data_dir: str | None, config_file: str | None, user_name: str | None,
                   ident: str) -> None:
    """Revoke one device password (it stops working at its next request)."""
    grants, user = open_grants(data_dir, config_file, user_name)
    grant = _revoke(grants, user, ident, ("device",))
    click.echo(f"Revoked device {grant.name!r} ({grant.id}) of {user}.", err=True)


# -- tokens --------------------------------------------------------------------
@click.group("tokens")
def tokens() -> None:
    """API tokens for applications (Authorization: Bearer), optionally property-limited."""


@tokens.command("add")
@user_options
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read",
              show_default=True, help="read: never changes anything.")
@click.option("--properties", default=None,
              help="Only these properties (e.g. name,email); the app never sees the "
                   "others. Default: every property.")
@click.option("--book", "books", multiple=True, help="Only this address book (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the token).")
def tokens_add(data_dir: str | None, config_file: str | None, user_name: str | None,
               name: str, scope: str, properties: str | None, books: tuple[str, ...],
               as_json: bool) -> None:
    """Make an API token; it is shown once."""
    from cardfile.plugin.contacts.grants.properties import parse_scopes

    grants, user = open_grants(data_dir, config_file, user_name)
    scopes = None if properties is None else parse_scopes(properties)
    if scopes is not None and "name" not in scopes:
        scopes = sorted({*scopes, "name"})  # a contact is listed by its name
    issued = grants.issue(user, "token", name, read_only=scope == "read", books=list(books),
                          protocols=["api"], scopes=scopes)
    if as_json:
        click.echo(json.dumps({**issued.grant.public(), "token": issued.secret}, indent=1))
        return
    click.echo(f"Token {issued.grant.name!r} ({issued.grant.id}) of {user}:", err=True)
    click.echo(issued.secret)
    click.echo("Send it as 'Authorization: Bearer TOKEN'; it is not shown again.", err=True)


@tokens.command("list")
@user_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tokens_list(data_dir: str | None, config_file: str | None, user_name: str | None,
                as_json: bool) -> None:
    """The user's API tokens."""
    grants, user = open_grants(data_dir, config_file, user_name)
    _print(grants.listed(user, ("token",)), as_json, f"{user} has no API tokens")


@tokens.command("revoke")
@user_options
@click.argument("ident")
def tokens_revoke(data_dir: str | None, config_file: str | None, user_name: str | None,
                  ident: str) -> None:
    """Revoke one API token."""
    grants, user = open_grants(data_dir, config_file, user_name)
    grant = _revoke(grants, user, ident, ("token",))
    click.echo(f"Revoked token {grant.name!r} ({grant.id}) of {user}.", err=True)


# -- every grant (admin) ---------------------------------------------------------
@click.group("grants")
def grants_group() -> None:
    """Every grant of every user: devices, tokens, sessions, friendships (admin)."""


@grants_group.command("list")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def grants_list(data_dir: str | None, config_file: str | None, as_json: bool) -> None:
    """Every user's grants."""
    settings = _settings(data_dir, config_file)
    store = Grants(GrantStore(settings.data_dir))
    _print(store.list_all(), as_json, "no grants", with_user=True)


@grants_group.command("revoke")
@common_options
@click.argument("user")
@click.argument("ident")
def grants_revoke(data_dir: str | None, config_file: str | None, user: str,
                  ident: str) -> None:
    """Revoke any user's grant by its id."""
    grants, user = open_grants(data_dir, config_file, user)
    found = grants.get(user, ident)
    if found is not None and found.kind == "share":
        from cardfile.plugin.contacts.grants import shares

        _, storage, _, _ = open_friends(data_dir, config_file, user)
        shares.revoke(grants, storage, user, ident)  # its shared book goes too
        click.echo(f"Revoked the share {found.name!r} ({ident}) of {user}.", err=True)
        return
    grant = _revoke(grants, user, ident, ("device", "token", "session"))
    click.echo(f"Revoked {grant.kind} {grant.name!r} ({grant.id}) of {user}.", err=True)


def _revoke(grants: Grants, user: str, ident: str, kinds: tuple[str, ...]) -> Grant:
    try:
        return grants.revoke(user, ident, kinds)
    except Refused as e:
        listing = {"device": "devices", "token": "tokens"}.get(kinds[0], "grants")
        raise click.ClickException(f"{e.reason}; see 'cardfile {listing} list'") from None


def register(cli: click.Group) -> None:
    cli.add_command(devices)
    cli.add_command(tokens)
    cli.add_command(grants_group)
    register_friends(cli)


# -- me and friends --------------------------------------------------------------
def open_friends(data_dir: str | None, config_file: str | None, user_name: str | None
                 ) -> tuple[Grants, Any, str, list[str]]:
    """Grants, the storage (for the copies), the user, and every user's name.

    Every command that opens them may write friends' card copies into books:
    refused on a PostgreSQL server's copy without the database."""
    from cardfile.cli import settings as settings_mod
    from cardfile.cli.options import load_storage, refuse_writing_a_database_cache

    settings = _settings(data_dir, config_file)
    refuse_writing_a_database_cache(settings)
    grants, user = open_grants(data_dir, config_file, user_name)
    storage = load_storage(settings, settings_mod.radicale_configuration(settings))
    return grants, storage, user, list(users.read(settings.htpasswd))


@click.group("me")
def me_group() -> None:
    """Your own contact (the *me* card) and what your friends see of it."""


@me_group.command("set")
@user_options
@click.argument("ident")
@click.option("--book", default="contacts", show_default=True, help="Address book name.")
def me_set(data_dir: str | None, config_file: str | None, user_name: str | None, ident: str,
           book: str) -> None:
    """Name your own contact (by UID); your friends get it at once."""
    from cardfile.plugin.contacts.grants import friends

    grants, storage, user, _ = open_friends(data_dir, config_file, user_name)
    mine = friends.set_me(grants, storage, user, ident, book)
    click.echo(f"Your contact is {mine['uid']} in {book}; friends see: "
               f"{', '.join(friends.shared_scopes(mine))}.", err=True)


@me_group.command("show")
@user_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def me_show(data_dir: str | None, config_file: str | None, user_name: str | None,
            as_json: bool) -> None:
    """Which contact is yours and what friends see of it."""
    from cardfile.plugin.contacts.grants import friends

    grants, user = open_grants(data_dir, config_file, user_name)
    mine = friends.me(grants, user)
    if as_json:
        click.echo(json.dumps({**mine, "shared": friends.shared_scopes(mine)} if mine
                              else None, indent=1))
        return
    if not mine:
        raise click.ClickException(f"{user} has not chosen a contact yet; use "
                                   "'cardfile me set ID'")
    click.echo(f"uid: {mine['uid']}\nbook: {mine['book']}\n"
               f"friends see: {', '.join(friends.shared_scopes(mine))}")


@me_group.command("share")
@user_options
@click.argument("scopes")
def me_share(data_dir: str | None, config_file: str | None, user_name: str | None,
             scopes: str) -> None:
    """What friends see besides name and photo, e.g. email,phone ('none': nothing more)."""
    from cardfile.plugin.contacts.grants import friends

    grants, storage, user, _ = open_friends(data_dir, config_file, user_name)
    chosen = [] if scopes.strip().lower() == "none" else scopes.split(",")
    mine = friends.share(grants, storage, user, chosen)
    click.echo(f"Friends see: {', '.join(friends.shared_scopes(mine))}.", err=True)


@click.group("friends")
def friends_group() -> None:
    """Friends: users of this server who see your me card (and you theirs)."""


@friends_group.command("invite")
@user_options
@click.argument("other")  # a user name, or a handle name@host
def friends_invite(data_dir: str | None, config_file: str | None, user_name: str | None,
                   other: str) -> None:
    """Invite another user of this server (a name, or a handle name@host)."""
    from cardfile.plugin.contacts.grants import friends

    grants, storage, user, known = open_friends(data_dir, config_file, user_name)
    found = friends.invite(grants, user, other, known, own_hosts=_own_hosts(storage))
    click.echo(f"Invited {other} ({found['id']}); it expires {found['expires']}.", err=True)


def _own_hosts(storage: Any) -> Callable[[str], bool]:
    from cardfile.plugin.dav.host_check import own_names

    return own_names(storage.configuration)


@friends_group.command("list")
@user_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def friends_list(data_dir: str | None, config_file: str | None, user_name: str | None,
                 as_json: bool) -> None:
    """Your friends and invitations (received ones first)."""
    from cardfile.plugin.contacts.grants import friends

    grants, user = open_grants(data_dir, config_file, user_name)
    found = friends.listing(grants, user)
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    if not found:
        click.echo(f"{user} has no friends or invitations yet", err=True)
    for f in found:
        click.echo(f"{f['id']}  {f['friend']}  {f['status']}")


def _answer(data_dir: str | None, config_file: str | None, user_name: str | None,
            ident: str, accept: bool) -> None:
    from cardfile.plugin.contacts.grants import friends

    grants, storage, user, _ = open_friends(data_dir, config_file, user_name)
    found = friends.answer(grants, storage, user, ident, accept)
    click.echo(f"{'Accepted' if accept else 'Declined'} the invitation of "
               f"{found['friend']}.", err=True)


@friends_group.command("accept")
@user_options
@click.argument("ident")
def friends_accept(data_dir: str | None, config_file: str | None, user_name: str | None,
                   ident: str) -> None:
    """Accept an invitation: you see each other's me cards in the Friends category."""
    _answer(data_dir, config_file, user_name, ident, True)


@friends_group.command("decline")
@user_options
@click.argument("ident")
def friends_decline(data_dir: str | None, config_file: str | None, user_name: str | None,
                    ident: str) -> None:
    """Decline an invitation (the inviter sees only 'not accepted')."""
    _answer(data_dir, config_file, user_name, ident, False)


@friends_group.command("end")
@user_options
@click.argument("ident")
@click.option("--keep/--remove", default=True, show_default=True,
              help="Keep your copy of their card as a plain contact, or remove it.")
def friends_end(data_dir: str | None, config_file: str | None, user_name: str | None,
                ident: str, keep: bool) -> None:
    """End a friendship (or withdraw an invitation)."""
    from cardfile.plugin.contacts.grants import friends

    grants, storage, user, _ = open_friends(data_dir, config_file, user_name)
    found = friends.end(grants, storage, user, ident, keep)
    click.echo(f"Ended the friendship with {found['friend']}; their card "
               f"{'stays as a plain contact' if keep else 'was removed'}.", err=True)


@friends_group.command("copy")
@user_options
@click.argument("ident")
def friends_copy(data_dir: str | None, config_file: str | None, user_name: str | None,
                 ident: str) -> None:
    """Get a friend's card again after deleting your copy of it."""
    from cardfile.plugin.contacts.grants import friends

    grants, storage, user, _ = open_friends(data_dir, config_file, user_name)
    found = friends.want_copy(grants, storage, user, ident)
    click.echo(f"You get {found['friend']}'s card again.", err=True)


# -- shares ------------------------------------------------------------------------
@click.group("shares")
def shares_group() -> None:
    """Share a book, or one category of it, with another user of this server."""


@shares_group.command("invite")
@user_options
@click.argument("other")
@click.option("--book", required=True, help="Your address book to share.")
@click.option("--category", default=None, help="Share only this category of the book.")
@click.option("--read-write", is_flag=True, help="They may change it too (default: read).")
def shares_invite(data_dir: str | None, config_file: str | None, user_name: str | None,
                  other: str, book: str, category: str | None, read_write: bool) -> None:
    """Offer a book (or a category) to a user of this server (a name or name@host)."""
    from cardfile.plugin.contacts.grants import shares

    grants, storage, user, known = open_friends(data_dir, config_file, user_name)
    found = shares.invite(grants, storage, user, other, book, category,
                          "rw" if read_write else "r", known, _own_hosts(storage))
    what = f"the category {category!r} of {book!r}" if category else repr(book)
    click.echo(f"Offered {what} to {other}, {'read-write' if read_write else 'read-only'} "
               f"({found['id']}); it expires {found['expires']}.", err=True)


@shares_group.command("list")
@user_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def shares_list(data_dir: str | None, config_file: str | None, user_name: str | None,
                as_json: bool) -> None:
    """Your shares and offers, sent and received (received ones first)."""
    from cardfile.plugin.contacts.grants import shares

    grants, user = open_grants(data_dir, config_file, user_name)
    found = shares.listing(grants, user)
    if as_json:
        click.echo(json.dumps(found, indent=1))
        return
    if not found:
        click.echo(f"{user} has no shares or offers", err=True)
    for f in found:
        what = f["book"] + (f" ({f['category']})" if f["category"] else "")
        where = f"  {f['path']}" if f.get("path") and f["direction"] == "received" else ""
        click.echo(f"{f['id']}  {f['owner']}:{what}  {f['access']}  "
                   f"{f['friend']}  {f['status']}{where}")


def _answer_share(data_dir: str | None, config_file: str | None, user_name: str | None,
                  ident: str, accept: bool) -> None:
    from cardfile.plugin.contacts.grants import shares

    grants, storage, user, _ = open_friends(data_dir, config_file, user_name)
    found = shares.answer(grants, storage, user, ident, accept)
    if accept:
        click.echo(f"Accepted: {found['owner']}'s {found['book']!r} is now your book "
                   f"{found['path']}.", err=True)
    else:
        click.echo(f"Declined the share of {found['owner']}.", err=True)


@shares_group.command("accept")
@user_options
@click.argument("ident")
def shares_accept(data_dir: str | None, config_file: str | None, user_name: str | None,
                  ident: str) -> None:
    """Accept a share: it appears as one more of your address books."""
    _answer_share(data_dir, config_file, user_name, ident, True)


@shares_group.command("decline")
@user_options
@click.argument("ident")
def shares_decline(data_dir: str | None, config_file: str | None, user_name: str | None,
                   ident: str) -> None:
    """Decline a share (the owner sees only 'not accepted')."""
    _answer_share(data_dir, config_file, user_name, ident, False)


@shares_group.command("end")
@user_options
@click.argument("ident")
def shares_end(data_dir: str | None, config_file: str | None, user_name: str | None,
               ident: str) -> None:
    """End a share (either side) or withdraw an offer; the shared book goes at once."""
    from cardfile.plugin.contacts.grants import shares

    grants, storage, user, _ = open_friends(data_dir, config_file, user_name)
    shares.end(grants, storage, user, ident)
    click.echo(f"Ended the share {ident}.", err=True)


def register_friends(cli: click.Group) -> None:
    cli.add_command(me_group)
    cli.add_command(friends_group)
    cli.add_command(shares_group)
