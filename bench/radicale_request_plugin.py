"""pytest plugin that runs Radicale's own ``BaseTest`` requests on Cardfile's storage.

``radicale_request_tests.py`` copies this file into the temporary folder where
it extracted Radicale's ``radicale/tests`` and loads it with ``pytest -p``.
Radicale's files are not edited: ``BaseTest`` is wrapped here, at run time.

- ``radicale.tests`` must be the extracted folder, not the installed wheel's
  (which ships only ``radicale/tests/custom``), so the extracted ``radicale``
  folder is put first on the installed package's ``__path__``.
- Every ``BaseTest.configure`` gets ``[storage] type = cardfile.plugin`` (and,
  with PostgreSQL, ``backend`` = a database of the test's own), unless the
  store is ``radicale``: the control run on Radicale's own ``multifilesystem``.
- After each ``configure`` the application's storage is checked to be the one
  asked for, so a run that silently fell back to stock storage cannot pass.

Environment (set by the runner):
  CARDFILE_RRT_FOLDER     the folder holding the extracted ``radicale/tests``
  CARDFILE_RRT_STORE      files | postgresql | radicale
  CARDFILE_RRT_PG_ADMIN   (postgresql) URL of the cluster's maintenance database
  CARDFILE_RRT_PG_TEMPLATE (postgresql) a database ``cardfile db upgrade`` made
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

import radicale

FOLDER = os.environ["CARDFILE_RRT_FOLDER"]
STORE = os.environ.get("CARDFILE_RRT_STORE", "files")
if STORE not in ("files", "postgresql", "radicale"):
    raise RuntimeError(f"CARDFILE_RRT_STORE: unknown store {STORE!r}")

radicale.__path__.insert(0, os.path.join(FOLDER, "radicale"))

if STORE != "radicale":
    # Registers Cardfile's own [storage] options before BaseTest loads a configuration.
    import cardfile.plugin  # noqa: F401

import radicale.tests as radicale_tests  # noqa: E402  (the extracted one, see above)

if not radicale_tests.__file__ or not radicale_tests.__file__.startswith(FOLDER):
    raise RuntimeError(f"radicale.tests was imported from {radicale_tests.__file__}, "
                       f"not from {FOLDER}")

_databases = itertools.count(1)


def _admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(os.environ["CARDFILE_RRT_PG_ADMIN"], autocommit=True) as conn:
        conn.execute(statement)


def _new_database() -> str:
    """A database of this test's own, a copy of the upgraded template (fast)."""
    name = f"rrt_{os.getpid()}_{next(_databases)}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{os.environ["CARDFILE_RRT_PG_TEMPLATE"]}"')
    admin_url = os.environ["CARDFILE_RRT_PG_ADMIN"]
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _cardfile_settings(test: Any) -> dict[str, str]:
    settings = {"type": "cardfile.plugin"}
    if STORE == "postgresql":
        settings["backend"] = test._cardfile_database_url
    return settings


def _check_storage(storage: Any) -> None:
    """Fail the test at once if the application does not run on the store asked for."""
    module = type(storage).__module__
    if STORE == "radicale":
        if not module.startswith("radicale.storage."):
            raise RuntimeError(f"control run: storage is {module}, not Radicale's own")
        return
    if not module.startswith("cardfile.plugin."):
        raise RuntimeError(f"storage is {module}, not Cardfile's (cardfile.plugin)")
    if (storage.shared is not None) != (STORE == "postgresql"):
        raise RuntimeError(f"storage.shared is {storage.shared!r} with store {STORE}")


def _close(application: Any) -> None:
    shared = getattr(application._storage, "shared", None)
    if shared is not None:
        shared.store.close()


#: The extracted BaseTest (the installed radicale.tests, all mypy sees, has none).
BaseTest: Any = radicale_tests.BaseTest  # type: ignore[attr-defined]
_configure: Callable[..., None] = BaseTest.configure
_setup: Callable[..., None] = BaseTest.setup_method
_teardown: Callable[..., None] = BaseTest.teardown_method


def configure(self: Any, config_: dict[str, Any]) -> None:
    if STORE != "radicale":
        storage = {**_cardfile_settings(self), **dict(config_.get("storage", {}))}
        config_ = {**config_, "storage": storage}
    _configure(self, config_)
    _check_storage(self.application._storage)
    self._cardfile_applications.append(self.application)


def setup_method(self: Any, *args: Any) -> None:
    self._cardfile_applications = []
    if STORE == "postgresql":
        self._cardfile_database_url = _new_database()
    _setup(self, *args)


def teardown_method(self: Any, *args: Any) -> None:
    try:
        _teardown(self, *args)
    finally:
        for application in self._cardfile_applications:
            _close(application)
        if STORE == "postgresql":
            name = self._cardfile_database_url.rsplit("/", 1)[1]
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BaseTest.configure = configure
BaseTest.setup_method = setup_method
BaseTest.teardown_method = teardown_method
