"""The seams hold: SQL only in the store, Radicale and vobject each behind one module.

A reviewer's ``grep`` made into tests, so a change that reaches around a seam
fails here with the file and line, instead of being found later.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = [ROOT / "plugin", ROOT / "cli"]
ADAPTER = ROOT / "plugin" / "radicale_adapter.py"
VOBJECT_FIXES = ROOT / "plugin" / "vcard" / "vobject_fixes.py"
#: plugin/'s layers, bottom up; a module imports only from its own layer or below.
LAYERS = {"refused": 0, "vcard": 0, "store": 1, "radicale_adapter": 1, "contacts": 2,
          "dav": 3, "api": 4, "app": 5, "__init__": 5}
STORE = ROOT / "plugin" / "store"

#: Private names of Radicale's objects that Cardfile uses (radicale_adapter.py).
RADICALE_PRIVATE = ("_filesystem_path", "_atomic_write", "_props_path", "_is_collision_free",
                    "_filesystem_folder", "_get_collection_root_folder", "_sync_directory",
                    "_extra_headers", "_rights", "_auth", "_sharing", "_check_path_format",
                    "_check_user_format", "_validate_path_value", "_urldecode_username",
                    "_encoding", "_collection_path", "_component_name", "_time_range",
                    "_vobject_item", "_max_resource_size", "_filesystem_fsync",
                    "_strict_preconditions", "_hook", "_meta_cache")
_SQL = re.compile(r"\b(SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET|CREATE (?:TABLE|INDEX))\b")


def python_files() -> Iterator[Path]:
    for folder in CODE:
        yield from sorted(folder.rglob("*.py"))


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == "cardfile.plugin":  # a module of the package, by name
                for alias in node.names:
                    yield node.lineno, f"{node.module}.{alias.name}"
            else:
                yield node.lineno, node.module


def strings_and_attributes(path: Path) -> Iterator[tuple[int, str, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, "string", node.value
        elif isinstance(node, ast.Attribute):
            yield node.lineno, "attribute", node.attr


def test_only_the_adapter_imports_radicale() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in python_files() if path != ADAPTER
             for line, module in imported_modules(path)
             if module == "radicale" or module.startswith("radicale.")]
    assert not found, "\n".join(found)


def test_only_the_adapter_touches_radicale_private_names() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} uses .{name}"
             for path in python_files() if path != ADAPTER
             for line, kind, name in strings_and_attributes(path)
             if kind == "attribute" and name in RADICALE_PRIVATE]
    assert not found, "\n".join(found)


def test_sql_is_written_only_in_the_store() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}"
             for path in python_files() if STORE not in path.parents
             for line, kind, text in strings_and_attributes(path)
             if kind == "string" and _SQL.search(text)]
    found += [f"{path.relative_to(ROOT)}:{line} imports sqlite3"
              for path in python_files() if STORE not in path.parents
              for line, module in imported_modules(path) if module == "sqlite3"]
    assert not found, "\n".join(found)


def test_vobject_is_used_only_behind_its_fixes_and_the_adapter() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in python_files() if path not in (VOBJECT_FIXES, ADAPTER)
             for line, module in imported_modules(path)
             if module == "vobject" or module.startswith("vobject.")]
    assert not found, "\n".join(found)


def _layer(module: str) -> tuple[str, int] | None:
    parts = module.split(".")
    if parts[:2] != ["cardfile", "plugin"]:
        return None
    name = parts[2] if len(parts) > 2 else "__init__"
    return name, LAYERS[name]


def test_plugin_imports_point_down() -> None:
    """vcard < store, adapter < contacts < dav < api < app: no module reaches up."""
    found = []
    for path in sorted((ROOT / "plugin").rglob("*.py")):
        relative = path.relative_to(ROOT / "plugin").with_suffix("").parts
        me = _layer(".".join(["cardfile", "plugin", *[p for p in relative if p != "__init__"]]))
        assert me is not None
        for line, module in imported_modules(path):
            if module == "cardfile.plugin" or not module.startswith("cardfile."):
                continue
            other = _layer(module)
            if other is None or other[1] > me[1]:
                found.append(f"{path.relative_to(ROOT)}:{line} ({me[0]}) imports {module}")
    assert not found, "\n".join(found)


def test_the_checks_see_what_they_look_for() -> None:
    """The walkers find the adapter's own imports and the store's SQL (no empty pass)."""
    assert any(m == "radicale" for _, m in imported_modules(ADAPTER))
    assert any(kind == "string" and _SQL.search(text)
               for path in STORE.rglob("*.py") for _, kind, text in strings_and_attributes(path))


#: Exceptions below the edges that are not refusals, and why.
NOT_REFUSALS = {
    "Unsupported": "the fast path's signal to hand a query to Radicale; never reaches a user",
}
EDGES = (ROOT / "plugin" / "api", ROOT / "plugin" / "dav", ROOT / "cli")


def test_the_core_refuses_with_one_error_type() -> None:
    """Every exception the core defines is a ``Refused``, mapped only at the edges."""
    found = []
    for path in python_files():
        if any(edge == path.parent or edge in path.parents for edge in EDGES):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef) or node.name in NOT_REFUSALS:
                continue
            bases = [ast.unparse(b) for b in node.bases]
            if node.name != "Refused" and any(b.endswith(("Exception", "Error")) for b in bases) \
                    and "Refused" not in bases:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} class {node.name}"
                             f"({', '.join(bases)})")
    assert not found, "\n".join(found)
