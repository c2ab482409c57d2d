"""The parts of Radicale that Cardfile relies on and Radicale does not promise to keep.

Each test names one internal the adapter (plugin/radicale_adapter.py) uses and
checks it still has the shape Cardfile expects, so a Radicale release that
changes it fails here, by name, instead of failing a request somewhere else.
"""

from __future__ import annotations

import ast
import functools
import inspect
import random
import re
from pathlib import Path
from types import CodeType

import radicale
import radicale.item as radicale_item
from radicale import pathutils
from radicale.storage import multifilesystem

import cardfile.plugin  # noqa: F401  (installs the adapter's replacements)
from cardfile.plugin import radicale_adapter
from cardfile.plugin.radicale_adapter import SUPPORTED_RADICALE
from cardfile.plugin.vcard import radicale_workarounds
from tests.davclient import card


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_installed_radicale_is_one_the_adapter_was_checked_against() -> None:
    assert radicale.VERSION.startswith(SUPPORTED_RADICALE), radicale.VERSION


def real_storage(tmp_path: Path) -> multifilesystem.Storage:
    configuration = radicale.config.load()
    configuration.update({"storage": {"filesystem_folder": str(tmp_path)}}, "test")
    return multifilesystem.Storage(configuration)


def test_the_collection_internals_keep_their_shape(tmp_path: Path) -> None:
    collection_class = multifilesystem.Collection
    assert parameters(collection_class._get)[:3] == ["self", "href", "verify_href"]
    assert parameters(collection_class._list) == ["self"]
    collection = collection_class(real_storage(tmp_path), "/alice/contacts/")
    for name in ("_filesystem_path", "_props_path", "_is_collision_free", "_storage"):
        assert hasattr(collection, name), name
    assert str(collection._filesystem_path).startswith(str(tmp_path))


def test_get_meta_still_caches_in_meta_cache_and_reads_again_under_the_write_lock() -> None:
    """AdapterCollection.get_meta serves ``_meta_cache`` while the props file is unchanged."""
    from radicale.storage.multifilesystem import meta

    source = inspect.getsource(meta.CollectionPartMeta.get_meta)
    assert 'if self._storage._lock.locked == "w" or self._meta_cache is None:' in source
    assert "self._meta_cache = " in source and "open(self._props_path" in source
    assert "self._atomic_write(self._props_path" in inspect.getsource(
        meta.CollectionPartMeta.set_meta)  # a props write replaces the file


def test_the_storage_internals_keep_their_shape(tmp_path: Path) -> None:
    storage = real_storage(tmp_path)
    assert callable(storage._get_collection_root_folder)
    assert callable(storage._sync_directory)
    for name in ("_filesystem_folder", "_max_resource_size", "_lock", "_filesystem_fsync"):
        assert hasattr(storage, name), name
    with storage.acquire_lock("w"):
        assert storage._lock.locked == "w"


def test_the_item_fields_the_lazy_item_sets_are_the_ones_radicale_reads(tmp_path: Path) -> None:
    card = tmp_path / "a.vcf"
    text = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a\r\nFN:A\r\nEND:VCARD\r\n"
    card.write_text(text, newline="")

    class FakeCollection:
        path = "alice/contacts"

    item = radicale_adapter.LazyItem(FakeCollection(), "a.vcf", '"etag"', "a",
                                     "Sat, 28 Nov 2026 05:00:00 GMT", str(card), None,
                                     lambda p: Path(p).read_bytes().decode())
    # Radicale's own properties read the fields the adapter filled in.
    assert item.etag == '"etag"' and item.uid == "a" and item.name == "VCARD"
    assert item.component_name == "" and item.href == "a.vcf"
    assert item.time_range == radicale_adapter.TIMESTAMP_RANGE
    assert item.serialize() == text
    assert item.vobject_item.fn.value == "A"


def test_public_helpers_the_adapter_re_exports_exist() -> None:
    for name in ("read_components", "check_and_sanitize_items", "find_available_uid", "Item"):
        assert hasattr(radicale_item, name), name
    for name in ("sanitize_path", "strip_path", "unstrip_path", "path_to_filesystem",
                 "is_safe_filesystem_path_component", "UnsafePathError"):
        assert hasattr(pathutils, name), name


def test_radicales_put_still_checks_what_the_fast_put_repeats() -> None:
    """plugin/dav/item_put.py repeats do_PUT's checks for one card, in its order and its
    words; a Radicale release that changes one of them fails here, not in a client."""
    import radicale.app.put as radicale_put

    source = inspect.getsource(radicale_put.ApplicationPartPut.do_PUT)
    steps = [
        'if not access.check("w")',
        "radicale_item.read_components(content",
        "prepare(",
        'acquire_lock("w", user, path=path, request="PUT", actor=actor)',
        "discover(path)",
        "discover(access.parent_path)",
        '"w" not in access.parent_permissions',
        'environ.get("HTTP_IF_MATCH", "")',
        "if item and not etag and self._strict_preconditions",
        "if not item and etag",
        'if item and etag and etag not in ("*", item.etag)',
        'environ.get("HTTP_IF_NONE_MATCH", "") == "*"',
        "item and item.uid != prepared_item.uid or",
        "not item and parent_item.has_uid(prepared_item.uid)",
        "parent_item.upload(href, prepared_item)",
        "if self._hook.enabled",
        "return client.NO_CONTENT, headers, None, None",
        "return client.CREATED, headers, None, None",
    ]
    position = 0
    for step in steps:  # each after the one before
        found = source.find(step, position)
        assert found >= 0, f"do_PUT no longer has {step!r} (after the steps before it)"
        position = found + len(step)
    prepare = inspect.getsource(radicale_put.prepare)
    assert "item.prepare()" in prepare and "len(item.serialize())" in prepare
    assert "> max_resource_size" in prepare and "OverflowError" in prepare
    assert radicale_adapter.uid_of_component is radicale_item.get_uid_from_object
    application = inspect.getsource(radicale.Application)
    for name in ("self._strict_preconditions", "self._max_resource_size"):
        assert name in application, name
    assert "self._hook" in inspect.getsource(radicale.app.base.ApplicationBase)


def test_the_application_keeps_its_storage_and_the_server_its_application() -> None:
    import radicale.server as radicale_server

    source = inspect.getsource(radicale.Application)
    assert "self._storage" in source
    assert hasattr(radicale_server, "Application")
    assert parameters(radicale_server.serve)[:2] == ["configuration", "shutdown_socket"]


# -- read_components: the adapter installs a linear rewrite of Radicale's workarounds ---

#: The substitutions Radicale's read_components applies, in order, that
#: plugin/vcard/radicale_workarounds.py redoes in one pass each.
RADICALE_WORKAROUNDS = [
    r"^(PHOTO(?:;[^:\r\n]*)?;ENCODING=b(?:;[^:\r\n]*)?:)data:[^;,\r\n]*;base64,",
    r"[\x00-\x08\x0B\x0C\x0E-\x1F]",
    r"(?m)^[ \t]*\r?\n",
    r"(TZID|TZNAME)(:[^\r\n]+) (\r?\n)",
    r"(TZID=[^:]+) (:)",
]


def _radicale_substitutions() -> list[ast.Call]:
    """The ``re.sub`` calls of Radicale's own read_components, in source order."""
    source = inspect.getsource(radicale_adapter.stock_read_components)
    return [node for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "re.sub"]


@functools.cache
def _radicale_code() -> list[CodeType]:
    return [compile(ast.Expression(call), "radicale.item.read_components", "eval")
            for call in _radicale_substitutions()]


def radicale_clean(text: str) -> str:
    """The text Radicale's read_components hands to vobject, by its own code."""
    for code in _radicale_code():
        text = eval(code, {"re": re, "s": text})
    return text


def test_read_components_still_applies_the_workarounds_the_adapter_redoes() -> None:
    calls = _radicale_substitutions()
    patterns = [ast.literal_eval(call.args[0]) for call in calls]
    assert patterns == RADICALE_WORKAROUNDS
    assert all(ast.unparse(call.args[2]) == "s" for call in calls)  # chained on the body
    source = inspect.getsource(radicale_adapter.stock_read_components)
    assert "vobject.readComponents(s, allowQP=True)" in source


def test_radicale_calls_read_components_through_the_module() -> None:
    """PUT and the item cache look the function up on ``radicale.item`` at each call,
    so the adapter's replacement there is the one they run."""
    import radicale.app.put as radicale_put
    import radicale.storage.multifilesystem.get as radicale_get

    for module in (radicale_put, radicale_get):
        assert "radicale_item.read_components(" in inspect.getsource(module), module
    assert radicale_item.read_components is radicale_adapter.read_components
    assert radicale_adapter.stock_read_components is not radicale_adapter.read_components


ODD_CARDS = [
    card("u1", "A B", "PHOTO;ENCODING=b;TYPE=png:data:image/png;base64,iVBORw0K"),
    card("u2", "A B", "photo;type=png;encoding=B:DATA:image/png;BASE64,iVBORw0K"),
    card("u3", "A B", "PHOTO;ENCODING=bx:data:image/png;base64,iVBORw0K"),
    card("u4", "A B", "X-TZ:TZID:Europe/Paris ", "X-T;TZID=Europe/Paris :x"),
    card("u5", "A B", "X-TZ:TZID: ", "X-A:TZNAME:CET  ", "X-B;TZID= :y"),
    card("u6", "A B", "NOTE:a\x01b", "", "  ", 'NOTE;X="a:b";Y=c=d:e'),
]


def test_read_components_reads_odd_cards_as_radicale_does() -> None:
    for text in ODD_CARDS:
        assert radicale_workarounds.clean(text) == radicale_clean(text)
        assert [c.serialize() for c in radicale_adapter.read_components(text)] == \
            [c.serialize() for c in radicale_adapter.stock_read_components(text)]


#: The words and characters Radicale's workaround patterns look at.
_PIECES = ["TZID:", "TZID=", "TZNAME:", "TZ", ":", " :", ";", " ", "\r", "\n", "\r\n", "\t",
           "a", "=", "b", ",", "PHOTO", "photo", ";ENCODING=b", ";encoding=B", "data:", "DATA:",
           "image/png", ";base64,", ";TYPE=png", "\x01", "\x0b"]


def test_the_linear_workarounds_give_radicales_text_on_many_bodies() -> None:
    """30,000 bodies strung from those pieces (seeded, so a failure repeats)."""
    rng = random.Random(20240611)
    for _ in range(30_000):
        text = "".join(rng.choices(_PIECES, k=rng.randint(0, 14)))
        assert radicale_workarounds.clean(text) == radicale_clean(text), repr(text)
