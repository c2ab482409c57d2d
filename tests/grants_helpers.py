"""Helpers for the grants tests: a three-user server, device passwords and tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, start_server
from tests.davclient import DavClient
from tests.test_api import Api

USERS = {"alice": "alice password 1", "bob": "bob password 22", "carol": "carol password 3"}


def three_user_server(tmp_path: Path, extra_config: str = "",
                      store_config: str = "") -> ServerProcess:
    server = start_server(tmp_path, USERS, extra_config, store_config)
    for user, password in USERS.items():  # each home and book exists from here on
        status, _, _ = DavClient(server.url, user, password).request(
            "PROPFIND", f"/{user}/", headers={"Depth": "1"})
        assert status == 207
    return server


def trio_server(tmp_path_factory: pytest.TempPathFactory, store_config: str = ""
                ) -> Iterator[ServerProcess]:
    """A module's server (each test module wraps it in a fixture, with its store)."""
    server = three_user_server(tmp_path_factory.mktemp("grants"), store_config=store_config)
    try:
        yield server
    finally:
        server.stop()


def cli(server: ServerProcess, *args: str, check: bool = True) -> Any:
    """A ``cardfile`` command on the server's data and configuration (its store)."""
    return server.cli(*args, check=check)


def new_device(server: ServerProcess, user: str, name: str, *flags: str) -> dict[str, Any]:
    out = cli(server, "devices", "add", name, "--user", user, "--json", *flags)
    data: dict[str, Any] = json.loads(out.stdout)
    assert data["password"].startswith("cfd-") and "hash" not in data
    return data


def new_token(server: ServerProcess, user: str, name: str, *flags: str) -> dict[str, Any]:
    out = cli(server, "tokens", "add", name, "--user", user, "--json", *flags)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def dav(server: ServerProcess, user: str, password: str | None = None,
        agent: str = "cardfile-tests/1.0") -> DavClient:
    return DavClient(server.url, user, password or USERS[user], user_agent=agent)


def api(server: ServerProcess, user: str, password: str | None = None) -> Api:
    return Api(server, user, password or USERS[user])


class BearerApi(Api):
    def __init__(self, server: ServerProcess, token: str) -> None:
        super().__init__(server, "x", None)
        self.auth = f"Bearer {token}"
