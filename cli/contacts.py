"""``cardfile import``, ``export``, ``dedupe``, ``contacts list|show`` and ``search``.

Thin click commands: they resolve the data folder, user and book, call
``cardfile.plugin`` (importers, dedupe, export) and print. They work on the
data folder directly, with or without a running server: every write takes
Radicale's storage lock through ``model.open_book``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from cardfile.cli import settings as settings_mod
from cardfile.cli.main import _settings, common_options
from cardfile.cli.options import existing_user, load_storage, refuse_writing_a_database_cache
from cardfile.cli.terminal import unguarded
from cardfile.plugin.contacts import actor, dedupe, export, importers
from cardfile.plugin.contacts.importers import book as import_book
from cardfile.plugin.contacts.model import AddressBook, open_book
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.index import ItemRow
from cardfile.plugin.vcard import normalize

F = TypeVar("F", bound=Callable[..., Any])


def book_options(func: F) -> F:
    func = click.option("--book", default="contacts", show_default=True,
                        help="Address book name.")(func)
    func = click.option("--user", default=None,
                        help="Whose contacts. Default: the only user in the htpasswd file "
                             "if there is exactly one, else your login name.")(func)
    return common_options(func)


class Context:
    """Settings, storage and the user/book one command works on."""

    def __init__(self, data_dir: str | None, config_file: str | None, user: str | None,
                 book: str) -> None:
        self.settings = _settings(data_dir, config_file)
        self.configuration = settings_mod.radicale_configuration(self.settings)
        self.user = existing_user(self.settings, user)
        self.book = book
        self.region = normalize.default_region(self.configuration)
        self._storage: Any = None
        #: Checked that a change here reaches the store (``refuse_writing_a_database_cache``).
        self._writes_allowed = False
        #: The options the user gave, for hints that name the same folder and user.
        self.flags = "".join(f" {flag} {shlex.quote(value)}" for flag, value in (
            ("--data-dir", data_dir), ("--config", config_file), ("--user", user))
            if value) + (f" --book {shlex.quote(book)}" if book != "contacts" else "")

    @property
    def storage(self) -> Any:
        if self._storage is None:
            self._storage = load_storage(self.settings, self.configuration)
        return self._storage

    def has_book(self) -> bool:
        """Whether the book's folder exists (a dry run of a first import reads nothing)."""
        return (self.settings.collection_root / self.user / self.book).is_dir()

    @property
    def merges(self) -> dedupe.MergeStore:
        return dedupe.MergeStore(self.settings.data_dir, self.user, self.book)

    @contextlib.contextmanager
    def open(self, mode: str = "r", create: bool | None = None) -> Iterator[AddressBook]:
        """The book under the storage lock; changes made inside are the CLI's in history."""
        if mode == "w" and not self._writes_allowed:  # (once: dedupe holds it often)
            refuse_writing_a_database_cache(self.settings)
            self._writes_allowed = True
        with actor.acting(self.user, client="cardfile CLI"), open_book(
                self.storage, self.user, self.book, mode,
                create=mode == "w" if create is None else create) as book:
            yield book


def _category_rows(b: AddressBook, ctx: Context, category: str) -> list[ItemRow]:
    try:
        return b.category_rows(category)
    except Refused as e:
        raise click.ClickException(
            f"{e.reason} (its categories: cardfile categories list{ctx.flags})") from None


def _fail(e: Refused, ctx: Context | None = None) -> click.ClickException:
    flags = ctx.flags if ctx is not None else ""
    hint = (f" (import contacts first: cardfile import FILE{flags}; or check --user/--book)"
            if e.status == 404 else "")
    return click.ClickException(e.reason + hint)


# -- import ----------------------------------------------------------------------
@click.command("import")
@book_options
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(importers.FORMATS), default="auto",
              show_default=True, help="Format of the files; auto looks at the content.")
@click.option("--category", "categories", multiple=True, metavar="NAME",
              help="Add every imported contact to this category (repeatable).")
@click.option("--encoding", default=None, help="Text encoding, when detection guesses wrong.")
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def import_(data_dir: str | None, config_file: str | None, user: str | None, book: str,
            files: tuple[str, ...], fmt: str, categories: tuple[str, ...],
            encoding: str | None, dry_run: bool, as_json: bool) -> None:
    """Import contacts (vCard, jCard, Google/Outlook/Thunderbird/LinkedIn CSV, LDIF).

    FILE may be - for standard input. Contacts that match one already in the
    book (same UID, or a shared email or phone with a compatible name) are
    merged into it; importing the same file twice adds nothing.
    """
    ctx = Context(data_dir, config_file, user, book)
    parsed = []
    for name in files:
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as e:
            raise click.ClickException(f"cannot read {name}: {e.strerror}") from None
        label = "<stdin>" if name == "-" else name
        parsed.append(importers.read(data, label, fmt, encoding))
    total = sum(len(p.cards) for p in parsed)
    if not dry_run:
        refuse_writing_a_database_cache(ctx.settings)
    # A dry run writes nothing: not even the folders and index opening a book makes.
    storage = None if dry_run and not ctx.has_book() else ctx.storage
    show_bar = sys.stderr.isatty() and not as_json and total > 200
    try:
        if show_bar:
            # (unguarded: the bar is drawn with a CR and escape codes of click's own.)
            with click.progressbar(length=total, label="Importing",
                                   file=unguarded(sys.stderr)) as bar:
                report = import_book.import_cards(
                    storage, ctx.user, book, parsed, ctx.merges, ctx.region,
                    list(categories), dry_run, progress=bar.update)
        else:
            report = import_book.import_cards(storage, ctx.user, book, parsed, ctx.merges,
                                              ctx.region, list(categories), dry_run)
    except Refused as e:
        raise _fail(e, ctx) from None
    report.formats = {p.cards[0].origin.rsplit(":", 1)[0] if p.cards else "?": p.format
                      for p in parsed}
    if as_json:
        click.echo(json.dumps(report.as_dict() | {"dry_run": dry_run}, ensure_ascii=False))
        return
    prefix = "Would import" if dry_run else "Imported"
    click.echo(f"{prefix} into {ctx.user}/{book}: read {report.read}, added {report.added}, "
               f"merged {report.merged}, unchanged {report.unchanged}, "
               f"skipped {report.skipped}.")
    for problem in report.problems:
        click.echo(("  skipped: " if problem.skipped else "  repaired: ") + str(problem),
                   err=True)
    if report.merges:
        more = " ..." if len(report.merges) > 5 else ""
        click.echo(f"  merges can be undone with 'cardfile dedupe --undo ID' "
                   f"(IDs: {', '.join(report.merges[:5])}{more})")


# -- export ----------------------------------------------------------------------
@click.command("export")
@book_options
@click.option("--format", "fmt", type=click.Choice(export.FORMATS), default="vcard3",
              show_default=True, help="vcard3 (Apple, Google), vcard4, jcard or csv.")
@click.option("--category", default=None, metavar="NAME", help="Only contacts in this category.")
@click.option("-o", "--output", default="-", type=click.Path(allow_dash=True),
              help="File to write (default: standard output).")
def export_(data_dir: str | None, config_file: str | None, user: str | None, book: str,
            fmt: str, category: str | None, output: str) -> None:
    """Export contacts as vCard 3.0/4.0, jCard or CSV."""
    ctx = Context(data_dir, config_file, user, book)
    texts = _texts(ctx, category)
    exported = 0

    def counted() -> Iterator[str]:
        nonlocal exported
        for text in texts:
            exported += 1
            yield text

    parts = export.export_parts(counted(), fmt)
    if output == "-":
        for block in _blocks(parts):
            click.echo(block, nl=False)
    else:
        _write_whole(Path(output), _blocks(parts))
        click.echo(f"Exported {exported} contact(s) to {output}.", err=True)


def _blocks(parts: Iterable[str], size: int = 500) -> Iterator[str]:
    """``parts`` joined ``size`` at a time: one write per block, not per card."""
    block: list[str] = []
    for part in parts:
        block.append(part)
        if len(block) >= size:
            yield "".join(block)
            block = []
    yield "".join(block)


def _write_whole(target: Path, blocks: Iterable[str]) -> None:
    """Write ``blocks`` to ``target``; a file there is replaced only once all is written.

    An export written as it is made must not leave a file it replaces half
    written if it stops midway. A target that is not a plain file (a device,
    a pipe) is written directly; a symbolic link's own target is the one replaced.
    """
    if target.is_symlink():
        target = target.resolve()
    if target.exists() and not target.is_file():
        with target.open("w", encoding="utf-8", newline="") as out:
            out.writelines(blocks)
        return
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                    dir=target.parent)
    except OSError as e:
        if isinstance(e, PermissionError) and target.is_file() and os.access(target, os.W_OK):
            # A file the user may write in a folder they may not: written in place.
            with target.open("w", encoding="utf-8", newline="") as out:
                out.writelines(blocks)
            return
        e.filename = str(target)  # (the error names what the user asked for)
        raise
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.writelines(blocks)
        if target.exists():  # (a new file keeps mkstemp's 0600, what the umask of
            os.chmod(temp, target.stat().st_mode & 0o7777)  # cli/main.py gives too)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _texts(ctx: Context, category: str | None) -> Iterator[str]:
    """Every contact's text (of ``category``) by name, read after the lock is released."""
    try:
        with ctx.open() as b:
            rows = list(b.rows().values()) if category is None else _category_rows(b, ctx,
                                                                                   category)
    except Refused as e:
        raise _fail(e, ctx) from None
    rows.sort(key=lambda r: (r.fn.casefold(), r.uid))
    return b.each_text_after_lock(rows)


# -- dedupe ----------------------------------------------------------------------
@click.command("dedupe")
@book_options
@click.option("--apply", "apply_", is_flag=True, help="Merge the sure duplicates.")
@click.option("--undo", "undo_id", default=None, metavar="ID", help="Undo the merge ID.")
@click.option("--history", is_flag=True, help="List merges that can be undone.")
@click.option("--force", is_flag=True, help="Undo even if the merged card changed since.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dedupe_(data_dir: str | None, config_file: str | None, user: str | None, book: str,
            apply_: bool, undo_id: str | None, history: bool, force: bool,
            as_json: bool) -> None:
    """List duplicate contacts (and merge them with --apply; undo with --undo ID)."""
    ctx = Context(data_dir, config_file, user, book)
    store = ctx.merges
    if history:
        entries = store.entries()
        if as_json:
            click.echo(json.dumps(entries, ensure_ascii=False))
        for meta in [] if as_json else entries:
            click.echo(f"{meta['id']}  {meta['survivor']}  {meta['reason']}")
        return
    try:
        if undo_id:
            try:
                with ctx.open("w") as b:
                    restored = import_book.undo_merge(b, store, undo_id, force)
            except KeyError:
                raise click.ClickException(
                    f"there is no merge {undo_id!r} to undo; 'cardfile dedupe --history"
                    f"{ctx.flags}' lists them") from None
            click.echo(json.dumps({"undone": undo_id, "restored": restored}) if as_json else
                       f"Undid merge {undo_id}: restored {', '.join(restored)}.")
            return
        # Matched off the lock: a running server's other users need not wait for it.
        with ctx.open("r") as b:
            found = import_book.people_of(b)
            token = import_book.changes_token(b)
        matcher = import_book.matcher_of(found, ctx.region)
        sure, ambiguous = dedupe.clusters(matcher)
        merged: list[str] = []
        left: list[list[str]] = []
        refused: list[tuple[list[str], str]] = []
        if apply_:  # in short holds; a cluster someone changed meanwhile is left
            merged, left, refused = import_book.merge_unchanged(
                lambda: ctx.open("w"), store, sure, matcher.people, token, ctx.region)
        with ctx.open("r") as b:
            labels = _labels(b, sure, ambiguous)
        names = {uid: p for uid, p in matcher.people.items()}
    except Refused as e:
        raise _fail(e, ctx) from None
    fn = {uid: (row.fn if row else names[uid].name) for uid, row in labels.items()}
    if as_json:
        click.echo(json.dumps({
            "clusters": [{"uids": u, "names": [fn[x] for x in u], "reasons": r}
                         for u, r in sure],
            "review": [{"uids": [a, b], "names": [fn[a], fn[b]], "reason": r}
                       for a, b, r in ambiguous],
            "merged": merged, "left": left,
            "refused": [{"uids": u, "reason": r} for u, r in refused]}, ensure_ascii=False))
        return
    if not sure and not ambiguous:
        click.echo("No duplicates found.")
    not_merged = dict((tuple(uids), reason) for uids, reason in refused)
    for uids, reasons in sure:
        verb = ("Duplicates" if not apply_ else
                "Changed since they were matched, not merged" if uids in left else
                f"Not merged ({not_merged[tuple(uids)]})" if tuple(uids) in not_merged
                else "Merged")
        click.echo(f"{verb}: " + " | ".join(f"{fn[u]} ({u})" for u in uids)
                   + f"  [{'; '.join(reasons)}]")
    for a, b_uid, reason in ambiguous:
        click.echo(f"Review: {fn[a]} ({a}) | {fn[b_uid]} ({b_uid})  [{reason}]")
    if sure and not apply_:
        click.echo("Run 'cardfile dedupe --apply' to merge the duplicates above "
                   "('Review' pairs are never merged automatically).")
    for merge_id in merged:
        click.echo(f"  undo with: cardfile dedupe --undo {merge_id}")
    if left:
        click.echo(f"{len(left)} group(s) of duplicates changed while this ran and were left "
                   f"as they are; run 'cardfile dedupe --apply{ctx.flags}' again.")


def _labels(book: Any, sure: list[tuple[list[str], list[str]]],
            ambiguous: list[tuple[str, str, str]]) -> dict[str, Any]:
    """uid -> its index row (None: gone) of every contact the clusters and pairs name."""
    return {uid: book.find(uid) for uid in {u for c, _ in sure for u in c}
            | {u for a, c, _ in ambiguous for u in (a, c)}}


# -- contacts list / show, search --------------------------------------------------
@click.group("contacts")
def contacts() -> None:
    """List and show contacts."""


@contacts.command("list")
@book_options
@click.option("--category", default=None, metavar="NAME", help="Only this category.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@click.option("--parsable", is_flag=True, help="Tab-separated: uid, name, email, phone.")
def contacts_list(data_dir: str | None, config_file: str | None, user: str | None, book: str,
                  category: str | None, as_json: bool, parsable: bool) -> None:
    """List contacts (all, or one category's)."""
    ctx = Context(data_dir, config_file, user, book)
    _print_people((export.summary(t) for t in _texts(ctx, category)), as_json, parsable)


def _print_people(items: Iterable[dict[str, Any]], as_json: bool, parsable: bool) -> None:
    """One line per person (or one JSON array), written as they come, in blocks."""
    for block in _blocks(_people_lines(items, as_json, parsable)):
        click.echo(block, nl=False)


def _people_lines(items: Iterable[dict[str, Any]], as_json: bool, parsable: bool
                  ) -> Iterator[str]:
    count = 0
    for s in items:
        if as_json:
            yield ("[" if count == 0 else ", ") + json.dumps(s, ensure_ascii=False)
        else:
            email = s["emails"][0]["value"] if s["emails"] else ""
            phone = s["phones"][0]["value"] if s["phones"] else ""
            yield ("\t".join((s["uid"], s["fn"], email, phone)) + "\n" if parsable
                   else f"{s['fn'] or '(no name)':30}  {email:30}  {phone}\n")
        count += 1
    if as_json:
        yield "]\n" if count else "[]\n"


@contacts.command("show")
@book_options
@click.argument("contact_id", metavar="ID")
@click.option("--format", "fmt", type=click.Choice(["pretty", "vcard", "json"]),
              default="pretty", show_default=True)
def contacts_show(data_dir: str | None, config_file: str | None, user: str | None, book: str,
                  contact_id: str, fmt: str) -> None:
    """Show one contact (ID is its UID, file name, or a unique search match)."""
    ctx = Context(data_dir, config_file, user, book)
    try:
        with ctx.open() as b:
            row = b.find(contact_id)
            if row is None:
                rows = search_rows(b, [contact_id])
                if len(rows) != 1:
                    raise click.ClickException(
                        f"no contact {contact_id!r}" if not rows else
                        f"{len(rows)} contacts match {contact_id!r}; use the UID "
                        "('cardfile search' lists them)")
                row = rows[0]
            text = b.read(row).text
    except Refused as e:
        raise _fail(e, ctx) from None
    if fmt == "vcard":
        click.echo(text, nl=False)
    elif fmt == "json":
        click.echo(json.dumps(export.summary(text) | {"vcard": text}, ensure_ascii=False))
    else:
        click.echo(_pretty(export.summary(text)))


def _pretty(s: dict[str, Any]) -> str:
    out = [s["fn"] or "(no name)"]
    for label, key in (("Nickname", "nickname"), ("Organisation", "org"), ("Title", "title"),
                       ("Birthday", "bday")):
        if s[key]:
            out.append(f"  {label}: {s[key]}")
    for e in s["emails"]:
        out.append(f"  Email ({','.join(e['types']) or 'other'}): {e['value']}")
    for p in s["phones"]:
        out.append(f"  Phone ({','.join(p['types']) or 'other'}): {p['value']}")
    for a in s["addresses"]:
        parts = [a[k] for k in ("street", "extended", "box", "code", "city", "region",
                                "country") if a[k]]
        out.append(f"  Address ({','.join(a['types']) or 'other'}): {', '.join(parts)}")
    if s["categories"]:
        out.append(f"  Categories: {', '.join(s['categories'])}")
    if s["note"]:
        out.append(f"  Note: {s['note']}")
    out.append(f"  UID: {s['uid']}")
    return "\n".join(out)


def search_rows(book: AddressBook, terms: list[str]) -> list[Any]:
    """Rows matching every term, in the JSON API's ``q`` language (the store's one search):
    words look in name, email, nickname and org (and phone digits when they look like a
    phone); ``field:value`` (name, email, phone, org, category, note, uid...) in that field."""
    collection = book.collection
    return collection._index.search(collection._coll(), _max_resource_size(book), terms)


def _max_resource_size(book: AddressBook) -> int:
    return int(book.collection.storage.max_resource_size)


@click.command("search")
@book_options
@click.argument("terms", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@click.option("--parsable", is_flag=True, help="Tab-separated: uid, name, email, phone.")
@click.option("--mutt", is_flag=True, help="mutt query_command output (email, name, note).")
def search(data_dir: str | None, config_file: str | None, user: str | None, book: str,
           terms: tuple[str, ...], as_json: bool, parsable: bool, mutt: bool) -> None:
    """Find contacts by name, email or phone; FIELD:VALUE searches one field.

    Fields: name, email, phone, org, category, nickname, note, title, address, uid.
    All terms must match. --mutt prints what mutt's query_command expects.
    """
    ctx = Context(data_dir, config_file, user, book)
    try:
        with ctx.open() as b:
            items = [export.summary(b.read(row).text) for row in search_rows(b, list(terms))]
    except Refused as e:
        raise _fail(e, ctx) from None
    if mutt:
        lines = [f"{e['value']}\t{s['fn']}\t{', '.join(s['categories'])}"
                 for s in items for e in s["emails"]]
        click.echo(f"{len(lines)} entries found" if lines else "No matches")
        for line in lines:
            click.echo(line)
        if not lines:
            sys.exit(1)
        return
    if not items and not as_json:
        click.echo("No matches.", err=True)
        sys.exit(1)
    _print_people(items, as_json, parsable)


def register(cli: click.Group) -> None:
    for command in (import_, export_, dedupe_, contacts, search):
        cli.add_command(command)
