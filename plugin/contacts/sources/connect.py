"""Connecting a source: find out what the URL is, then make its book.

A URL is tried as CardDAV first (an address book, or a server whose account
leads to one through ``/.well-known/carddav``), then as a contacts file. A
path (or ``file://``) is a local folder. Nothing is created until the source
answered: a wrong password or address is said at once, not at the first
refresh.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from cardfile.plugin.contacts.sources import carddav, files, registry, secrets
from cardfile.plugin.contacts.sources.fetch import SIGN_IN, Client, SourceFailure
from cardfile.plugin.contacts.sources.registry import Source
from cardfile.plugin.contacts.sources.sync import data_dir_of, limits_of
from cardfile.plugin.refused import Refused


def add(storage: Any, user: str, url: str, name: str | None = None,
        interval: int = registry.DEFAULT_INTERVAL, into: str = "own",
        username: str = "", password: str = "", kind: str | None = None,
        allow_folders: bool = True) -> Source:
    """Probe ``url``, then create the source's book; the caller runs the first sync."""
    if interval < registry.MIN_INTERVAL:
        raise Refused(400, f"the interval must be at least {registry.MIN_INTERVAL} second(s)")
    if into not in registry.INTO:
        raise Refused(400, f"--into must be one of {', '.join(registry.INTO)}")
    registry.refuse_planned(kind, url)
    scheme = url.partition(":")[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        _check_address(url)
        if kind == "folder":
            raise Refused(400, "a folder source takes a path, not a URL")
    else:
        if not allow_folders:
            raise Refused(400, "only http(s) sources can be added here; add a local folder "
                               "with 'cardfile sources add PATH' on the server's machine")
        path = url[len("file://"):] if scheme == "file" else url
        url = os.path.abspath(os.path.expanduser(path))
        if not os.path.isdir(url):
            raise Refused(400, f"{url} is not a folder (give a folder of .vcf files, or an "
                               "http(s) URL)")
        if os.path.realpath(url).startswith(os.path.realpath(data_dir_of(storage)) + os.sep):
            raise Refused(400, "a folder inside Cardfile's data folder cannot be a source")
        kind = "folder"
    name = registry.check_name(name or registry.name_from_url(url))
    source = Source(name=name, kind=kind or "carddav", url=url, user=user, interval=interval,
                    into=into, username=username)
    for existing, _ in registry.sources_of(storage, user):
        if existing.name == name:
            raise Refused(409, f"there is a source named {name!r} already; choose another "
                               "--name")
    if source.kind != "folder":
        client = Client(limits_of(storage), username, password)
        source.kind, source.book_url = _probe(client, url, kind)
    folder = registry.create(storage, source)
    if password or username:
        secrets.store(data_dir_of(storage), folder, username, password)
    return source


def _probe(client: Client, url: str, kind: str | None) -> tuple[str, str]:
    if kind in (None, "carddav"):
        try:
            books = carddav.discover(client, url)
        except SourceFailure as e:
            if kind == "carddav" or e.kind == SIGN_IN:  # else: maybe a plain file
                raise
            books = None
        if books is not None:
            if not books:
                raise Refused(404, "the CardDAV account has no address books")
            if len(books) > 1:
                listed = "; ".join(f"{b.name or '(unnamed)'}: {b.url}" for b in books[:10])
                raise Refused(409, f"{len(books)} address books were found; add one by its "
                                   f"URL: {listed}")
            return "carddav", books[0].url
    snapshot = files.pull_url(client, url, {})
    if snapshot is None or not snapshot.cards:
        raise Refused(400, f"{url} is neither a CardDAV address book nor a contacts file")
    return "file", ""


def login(storage: Any, user: str, name: str, username: str, password: str) -> Source:
    """New credentials for a source; it is synced again at the next chance."""
    source, folder = registry.find(storage, user, name)
    with storage.acquire_lock("w", user):
        secrets.store(data_dir_of(storage), folder, username, password)
        source.username = username
        registry.write_source(folder, source)
        state = registry.read_state(folder)
        state.pop("needs_sign_in", None)
        state["next_at"] = 0
        registry.write_state(folder, state)
    return source


def _check_address(url: str) -> None:
    """Refuse an address no HTTP request can carry (control characters, spaces, non-ASCII)."""
    if not url.isascii() or any(not ch.isprintable() or ch.isspace() for ch in url):
        raise Refused(400, "the address may hold only printable ASCII characters without "
                           "spaces: percent-encode the path, and write an international "
                           "domain name in its xn-- form")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as e:  # a bracketed host that is no IPv6 address, a bad port
        raise Refused(400, f"{url[:80]!r} is not a usable address: {e}") from None
    if not host:
        raise Refused(400, f"{url[:80]!r} names no server; give an address like "
                           "https://contacts.example.org/")
