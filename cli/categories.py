"""``cardfile categories``: the Categories collection from the command line.

Works on the data folder directly, with or without a running server: it
takes the same storage lock and writes through the same plugin code, so a
server's clients see every change in their next sync.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click

from cardfile.cli import settings as settings_mod
from cardfile.cli.options import (
    _settings,
    common_options,
    existing_user,
    load_storage,
    refuse_writing_a_database_cache,
)
from cardfile.plugin.contacts import categories as categories_mod
from cardfile.plugin.contacts import category_changes, model, published, views


def book_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--book", default="contacts", show_default=True,
                        help="Address book name.")(func)
    func = click.option("--user", "user_name", default=None,
                        help="Whose address book (default: the only user, else your login "
                             "name).")(func)
    return common_options(func)


@contextmanager
def open_categories(data_dir: str | None, config_file: str | None, user_name: str | None,
                    book: str, mode: str) -> Iterator[categories_mod.Categories]:
    with categories_hold(data_dir, config_file, user_name, book, mode)() as cats:
        yield cats


def categories_hold(data_dir: str | None, config_file: str | None, user_name: str | None,
                    book: str, mode: str) -> category_changes.Hold:
    """The book's categories within one hold of its lock, as often as called
    (the storage loaded once)."""
    settings = _settings(data_dir, config_file)
    if mode == "w":
        refuse_writing_a_database_cache(settings)
    storage = load_storage(settings, settings_mod.radicale_configuration(settings))
    user = existing_user(settings, user_name)

    @contextmanager
    def hold() -> Iterator[categories_mod.Categories]:
        # Only the book every user has is made here (as the server makes it at a first
        # login): a mistyped --book made a new, empty book appear on the user's phones.
        with model.open_book(storage, user, book, mode,
                             create=mode == "w" and book == model.DEFAULT_BOOK) as address_book:
            yield categories_mod.Categories(address_book.collection)

    return hold


def _as_dict(category: categories_mod.Category) -> dict[str, Any]:
    data = asdict(category)
    data["pending"] = list(category.pending)
    return data


@click.group("categories")
def categories() -> None:
    """List and change categories (groups) of contacts."""


@categories.command("list")
@book_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(data_dir: str | None, config_file: str | None, user_name: str | None, book: str,
          as_json: bool) -> None:
    """Every category with its number of members (empty ones too)."""
    with open_categories(data_dir, config_file, user_name, book, "r") as cats:
        found = cats.all()
    if as_json:
        click.echo(json.dumps([_as_dict(c) for c in found], indent=1, ensure_ascii=False))
        return
    for c in found:
        click.echo(f"{c.count:6d}  {c.name}")


@categories.command("show")
@book_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(data_dir: str | None, config_file: str | None, user_name: str | None, book: str,
         name: str, as_json: bool) -> None:
    """One category and its members."""
    with open_categories(data_dir, config_file, user_name, book, "r") as cats:
        category = cats.require(name)
        members = cats.members(name)
    if as_json:
        data = _as_dict(category)
        data["members"] = [{"uid": r.uid, "href": r.href, "name": r.fn} for r in members]
        click.echo(json.dumps(data, indent=1, ensure_ascii=False))
        return
    click.echo(f"{category.name} ({category.count} members)")
    for row in sorted(members, key=lambda r: r.fn.casefold()):
        click.echo(f"  {row.fn}  [{row.uid}]")
    for pending in category.pending:
        click.echo(f"  (not on this server yet) {pending}")


@categories.command("add")
@book_options
@click.argument("name")
@click.option("--color", default="", help="A colour, e.g. #3366cc.")
@click.option("--description", default="")
def add(data_dir: str | None, config_file: str | None, user_name: str | None, book: str,
        name: str, color: str, description: str) -> None:
    """Create a category (it may stay empty)."""
    with open_categories(data_dir, config_file, user_name, book, "w") as cats:
        category = cats.create(name, color=color, description=description)
    click.echo(f"Created category {category.name!r}.", err=True)


@categories.command("rename")
@book_options
@click.argument("old")
@click.argument("new")
def rename(data_dir: str | None, config_file: str | None, user_name: str | None, book: str,
           old: str, new: str) -> None:
    """Rename a category on every member."""
    category = category_changes.rename(
        categories_hold(data_dir, config_file, user_name, book, "w"), old, new)
    click.echo(f"Renamed {old!r} to {category.name!r} ({category.count} members).", err=True)


@categories.command("remove")
@book_options
@click.argument("name")
def remove(data_dir: str | None, config_file: str | None, user_name: str | None, book: str,
           name: str) -> None:
    """Delete a category; its contacts stay."""
    count = category_changes.delete(
        categories_hold(data_dir, config_file, user_name, book, "w"), name)
    click.echo(f"Removed category {name!r} from {count} contact(s).", err=True)


@categories.command("members")
@book_options
@click.argument("name")
@click.option("--add", "to_add", multiple=True, help="UID of a contact to add.")
@click.option("--remove", "to_remove", multiple=True, help="UID of a contact to remove.")
def members(data_dir: str | None, config_file: str | None, user_name: str | None, book: str,
            name: str, to_add: tuple[str, ...], to_remove: tuple[str, ...]) -> None:
    """Put contacts into a category or take them out."""
    with open_categories(data_dir, config_file, user_name, book, "w") as cats:
        added, missing = cats.add_members(name, to_add) if to_add else ([], [])
        removed = cats.remove_members(name, to_remove) if to_remove else []
    click.echo(f"Added {len(added)}, removed {len(removed)}.", err=True)
    if missing:
        raise click.ClickException(f"no contact with UID {', '.join(missing)}")


@categories.command("publish")
@book_options
@click.argument("name")
@click.option("--as", "folder", default=None,
              help="Name of the new address book (default BOOK-CATEGORY).")
def publish(data_dir: str | None, config_file: str | None, user_name: str | None, book: str,
            name: str, folder: str | None) -> None:
    """Offer one category as an address book of its own (for a phone)."""
    with open_categories(data_dir, config_file, user_name, book, "w") as cats:
        category = cats.require(name)
        storage = cats.collection.storage
        path = published.publish(storage, cats.collection.owner, book, category.name, folder)
    click.echo(f"Published {category.name!r} as {path}; subscribe to that address book on "
               "the device that should carry only this category.", err=True)
    click.echo(path)


@categories.command("unpublish")
@book_options
@click.argument("name")
def unpublish(data_dir: str | None, config_file: str | None, user_name: str | None, book: str,
              name: str) -> None:
    """Remove a category's own address book (the contacts stay)."""
    with open_categories(data_dir, config_file, user_name, book, "w") as cats:
        removed = published.unpublish(cats.collection.storage, cats.collection.owner, book,
                                      name)
    if not removed:
        raise click.ClickException(f"category {name!r} is not published")
    click.echo(f"Removed {', '.join(removed)}.", err=True)


@categories.command("group-cards")
@common_options
@click.option("--user", "user_name", default=None, help="Whose setting.")
@click.argument("mode", type=click.Choice(views.GROUP_CARD_MODES), required=False)
def group_cards(data_dir: str | None, config_file: str | None, user_name: str | None,
                mode: str | None) -> None:
    """Show or set who gets group cards: auto (Apple clients), always, never."""
    settings = _settings(data_dir, config_file)
    user = existing_user(settings, user_name)
    root = str(settings.collection_root)
    if mode is None:
        click.echo(views.read_group_card_mode(root, user, "auto"))
        return
    views.write_group_card_mode(root, user, mode)
    click.echo(f"group_cards for {user}: {mode}", err=True)
