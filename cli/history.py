"""``cardfile trash``, ``history``, ``restore-to`` and ``contacts remove``: the way back.

Thin commands over ``plugin/contacts/undo.py``: they read the book's history
and restore through the same write path as every client, so a restore is
in every device's next sync, and is itself in the history.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cardfile.cli.contacts import Context, _pretty, book_options
from cardfile.plugin.contacts import card_diff, export, undo, when
from cardfile.plugin.contacts.history import describe_time
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.history import Event


def _fail(e: Refused, ctx: Context) -> click.ClickException:
    """The refusal in one line; for a book that is not there, which options to check."""
    hint = " (check --user and --book)" if "address book" in e.reason else ""
    return click.ClickException(e.reason + hint)


def _who(event: Event | None) -> str:
    if event is None:
        return "(before the history began)"
    via = f", {event.via}" if event.via else ""
    return (f"{describe_time(event.time_ns)}  {event.user or '?'} with "
            f"{event.client or 'an unknown client'}{via}")


def _event_json(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {"time": describe_time(event.time_ns), "time_ns": event.time_ns,
            "user": event.user, "client": event.client, "agent": event.agent,
            "action": event.action, "via": event.via}


# -- trash ------------------------------------------------------------------------
@click.group("trash")
def trash() -> None:
    """Deleted contacts, kept for a while ([storage] history_days, 30 by default)."""


@trash.command("list")
@book_options
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
def trash_list(data_dir: str | None, config_file: str | None, user: str | None, book: str,
               as_json: bool) -> None:
    """List deleted contacts, newest first, with who deleted them and with what."""
    ctx = Context(data_dir, config_file, user, book)
    try:
        with ctx.open() as b:
            items = undo.trash(b)
    except Refused as e:
        raise _fail(e, ctx) from None
    if as_json:
        click.echo(json.dumps([{"uid": i.uid, "name": i.fn, "href": i.href,
                                "deleted": _event_json(i.deleted)} for i in items],
                              ensure_ascii=False))
        return
    if not items:
        click.echo("The trash is empty.", err=True)
        return
    for item in items:
        click.echo(f"{item.uid}  {item.fn or '(no name)'}  deleted {_who(item.deleted)}")
    click.echo(f"Restore one with: cardfile trash restore UID{ctx.flags}", err=True)


@trash.command("show")
@book_options
@click.argument("uid")
@click.option("--format", "fmt", type=click.Choice(["pretty", "vcard", "json"]),
              default="pretty", show_default=True)
def trash_show(data_dir: str | None, config_file: str | None, user: str | None, book: str,
               uid: str, fmt: str) -> None:
    """Show a deleted contact as it was when it was deleted."""
    ctx = Context(data_dir, config_file, user, book)
    try:
        with ctx.open() as b:
            item = undo.trash_item(b, uid)
    except Refused as e:
        raise _fail(e, ctx) from None
    text = item.text or ""
    if fmt == "vcard":
        click.echo(text, nl=False)
    elif fmt == "json":
        click.echo(json.dumps({"uid": item.uid, "href": item.href, "vcard": item.text,
                               "deleted": _event_json(item.deleted)}, ensure_ascii=False))
    else:
        click.echo(_pretty(export.summary(text)) if text else "(the text was not kept)")
        click.echo(f"  Deleted: {_who(item.deleted)}")


@trash.command("restore")
@book_options
@click.argument("uids", nargs=-1, required=True, metavar="UID...")
def trash_restore(data_dir: str | None, config_file: str | None, user: str | None, book: str,
                  uids: tuple[str, ...]) -> None:
    """Put deleted contacts back (same UID and file name; clients see them at next sync)."""
    ctx = Context(data_dir, config_file, user, book)
    try:
        with ctx.open("w", create=False) as b:
            for uid in uids:
                undo.trash_item(b, uid)  # all of them exist before any is restored
            for uid in uids:
                contact = undo.restore_from_trash(b, uid)
                click.echo(f"Restored {uid} as {contact.href}.")
    except Refused as e:
        raise _fail(e, ctx) from None


@trash.command("purge")
@book_options
@click.argument("uids", nargs=-1, metavar="[UID...]")
@click.option("--all", "purge_all", is_flag=True, help="Empty the whole trash.")
def trash_purge(data_dir: str | None, config_file: str | None, user: str | None, book: str,
                uids: tuple[str, ...], purge_all: bool) -> None:
    """Forget deleted contacts for good (their earlier versions go too)."""
    if not uids and not purge_all:
        raise click.UsageError("name the UIDs to purge, or --all to empty the trash")
    ctx = Context(data_dir, config_file, user, book)
    try:
        with ctx.open("w", create=False) as b:
            if purge_all:
                count = undo.purge_all(b)
                click.echo(f"Purged {count} contact(s) from the trash.")
                return
            for uid in uids:
                undo.trash_item(b, uid)
            for uid in uids:
                undo.purge(b, uid)
                click.echo(f"Purged {uid}.")
    except Refused as e:
        raise _fail(e, ctx) from None


# -- history of one contact ------------------------------------------------------------
@click.command("history")
@book_options
@click.argument("contact_id", metavar="ID")
@click.option("--restore", "restore_version", type=int, default=None, metavar="VERSION",
              help="Make this version the current one (a new change).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history(data_dir: str | None, config_file: str | None, user: str | None, book: str,
            contact_id: str, restore_version: int | None, as_json: bool) -> None:
    """Every version of a contact (ID: its UID or file name), with what changed."""
    ctx = Context(data_dir, config_file, user, book)
    try:
        with ctx.open("w" if restore_version is not None else "r", create=False) as b:
            row = b.find(contact_id)
            uid = row.uid if row is not None and row.uid else contact_id
            if restore_version is not None:
                contact = undo.restore_version(b, uid, restore_version)
                click.echo(f"Restored version {restore_version} of {uid} ({contact.href}).")
                return
            found = undo.versions(b, uid)
    except Refused as e:
        raise _fail(e, ctx) from None
    if as_json:
        click.echo(json.dumps([{"version": v.id, "made": _event_json(v.made_by),
                                "replaced": _event_json(v.replaced_by),
                                "changes": v.changes, "vcard": v.text} for v in found],
                              ensure_ascii=False))
        return
    if not found:
        click.echo(f"{uid} has no recorded versions.", err=True)
        return
    for version in found:
        label = "current" if version.id == 0 else f"version {version.id}"
        made = version.made_by
        action = made.action if made is not None else "as it was"
        click.echo(f"{label}: {action} {_who(made)}")
        for line in card_diff.describe(version.changes):
            click.echo(f"    {line}")
        if version.replaced_by is not None:
            click.echo(f"    then {version.replaced_by.action} {_who(version.replaced_by)}")
    restorable = [v.id for v in found if v.id]
    if restorable:
        click.echo(f"Restore one with: cardfile history {uid} --restore VERSION{ctx.flags}",
                   err=True)


# -- restore the book to a time ----------------------------------------------------------
@click.command("restore-to")
@book_options
@click.argument("time_text", metavar="TIME")
@click.option("--category", default=None, metavar="NAME",
              help="Only the contacts in this category (then or now).")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def restore_to(data_dir: str | None, config_file: str | None, user: str | None, book: str,
               time_text: str, category: str | None, dry_run: bool, yes: bool,
               as_json: bool) -> None:
    """Undo every change since TIME ("Tuesday 14:00", "2 hours ago", "2024-05-14 14:00").

    The changes are written like any other, so every device syncs them, and
    they can be undone in turn (restore-to a time just before this one).
    """
    try:
        moment = when.parse(time_text)
    except when.BadTime as e:
        raise click.BadParameter(str(e), param_hint="TIME") from None
    ctx = Context(data_dir, config_file, user, book)
    time_ns = when.to_ns(moment)
    try:
        with ctx.open("r", create=False) as b:
            plan = undo.plan_restore_to(b, time_ns, category)
        if not as_json or dry_run:
            _print_plan(plan, dry_run or not yes, as_json)
        if dry_run or plan.empty:
            return
        if not yes:
            click.confirm("Apply these changes?", abort=True, err=True)
        with ctx.open("w", create=False) as b:
            plan = undo.apply(b, undo.plan_restore_to(b, time_ns, category))
    except Refused as e:
        raise _fail(e, ctx) from None
    _print_plan(plan, False, as_json)
    if plan.failed:
        raise click.ClickException(f"{len(plan.failed)} contact(s) could not be restored: "
                                   + "; ".join(plan.failed[:5]))


def _print_plan(plan: undo.Plan, pending: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"time": describe_time(plan.time_ns), "category": plan.category,
                               "dry_run": pending, "added": len(plan.add),
                               "changed": len(plan.change), "deleted": len(plan.delete),
                               "failed": plan.failed}, ensure_ascii=False))
        return
    scope = f" (category {plan.category})" if plan.category else ""
    verb = "Would" if pending else "Did"
    if plan.empty:
        click.echo(f"Nothing changed since {describe_time(plan.time_ns)}{scope}.")
        return
    click.echo(f"Restoring to {describe_time(plan.time_ns)}{scope}: "
               f"added {len(plan.add)}, changed {len(plan.change)}, "
               f"deleted {len(plan.delete)}.")
    for label, steps in (("add back", plan.add), ("change back", plan.change),
                         ("delete", plan.delete)):
        for step in steps[:20]:
            click.echo(f"  {verb} {label}: {step.fn or step.uid} ({step.uid})")
        if len(steps) > 20:
            click.echo(f"  ... and {len(steps) - 20} more to {label}")


# -- contacts remove -------------------------------------------------------------------
@click.command("remove")
@book_options
@click.argument("contact_ids", nargs=-1, required=True, metavar="ID...")
def contacts_remove(data_dir: str | None, config_file: str | None, user: str | None,
                    book: str, contact_ids: tuple[str, ...]) -> None:
    """Delete contacts (ID: UID or file name); they stay in the trash for a while."""
    ctx = Context(data_dir, config_file, user, book)
    try:
        with ctx.open("w", create=False) as b:
            rows = []
            for key in contact_ids:
                row = b.find(key)
                if row is None:
                    raise Refused(404, f"no contact {key!r} in {b.path}; nothing was "
                                         "deleted")
                rows.append(row)
            for row in rows:
                b.delete(row.uid or row.href)
                click.echo(f"Deleted {row.fn or row.uid} ({row.uid}); 'cardfile trash "
                           f"restore {row.uid}{ctx.flags}' brings it back.")
    except Refused as e:
        raise _fail(e, ctx) from None


def register(cli: click.Group) -> None:
    from cardfile.cli.contacts import contacts

    cli.add_command(trash)
    cli.add_command(history)
    cli.add_command(restore_to)
    contacts.add_command(contacts_remove)
