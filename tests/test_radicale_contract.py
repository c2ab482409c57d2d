"""The parts of Radicale that Cardfile relies on and Radicale does not promise to keep.

Each test names one internal the adapter (plugin/radicale_adapter.py) uses and
checks it still has the shape Cardfile expects, so a Radicale release that
changes it fails here, by name, instead of failing a request somewhere else.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import radicale
import radicale.item as radicale_item
from radicale import pathutils
from radicale.storage import multifilesystem

from cardfile.plugin import radicale_adapter
from cardfile.plugin.radicale_adapter import SUPPORTED_RADICALE


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
    assert parameters(collection_class._atomic_write)[:3] == ["self", "path", "mode"]
    assert "newline" in parameters(collection_class._atomic_write)
    assert parameters(collection_class._get)[:3] == ["self", "href", "verify_href"]
    assert parameters(collection_class._list) == ["self"]
    collection = collection_class(real_storage(tmp_path), "/alice/contacts/")
    for name in ("_filesystem_path", "_props_path", "_is_collision_free", "_storage"):
        assert hasattr(collection, name), name
    assert str(collection._filesystem_path).startswith(str(tmp_path))


def test_the_storage_internals_keep_their_shape(tmp_path: Path) -> None:
    storage = real_storage(tmp_path)
    assert callable(storage._get_collection_root_folder)
    assert callable(storage._sync_directory)
    for name in ("_filesystem_folder", "_max_resource_size", "_lock"):
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


def test_the_application_keeps_its_storage_and_the_server_its_application() -> None:
    import radicale.server as radicale_server

    source = inspect.getsource(radicale.Application)
    assert "self._storage" in source
    assert hasattr(radicale_server, "Application")
    assert parameters(radicale_server.serve)[:2] == ["configuration", "shutdown_socket"]
