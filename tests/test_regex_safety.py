"""No regular expression in Cardfile is super-linear on what a user sends.

Every card field, CSV cell, header and path is hostile; one backtracking regex
over 50,000 characters held the GIL for minutes and every user waited. Two
checks keep it so:

- a lint over every pattern in plugin/ and cli/ (module-level compiled
  patterns, literals passed to ``re.*``) and the vobject patterns Cardfile
  relies on: a quantifier inside another unbounded quantifier is refused
  unless the inner one is possessive or atomic (the shape of every
  catastrophic regex), except for an explicit allow-list with a reason each;
- a timing check: each pattern meets the worst inputs we could build (long
  runs of the characters its classes accept, with a failing end) with
  search, match and findall, and must finish within a generous bound that a
  linear regex meets by orders of magnitude and a quadratic one does not.

New patterns are found automatically: adding a regex adds it to both checks.
"""

from __future__ import annotations

import ast
import importlib
import re
import re._parser as sre_parse  # type: ignore[import-not-found]
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.davclient import DavClient, card

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"plugin": "cardfile.plugin", "cli": "cardfile.cli"}

#: Patterns the static check flags but that are linear, and why.
ALLOWED_NESTED: dict[str, str] = {
    r"^(?:iOS|iPadOS|macOS|Mac ?OS ?X|Mac_OS_X|watchOS|visionOS)/"
    r"|AddressBook|dataaccessd|accountsd|CoreDAV|ContactsAgent":
        "alternatives of literals, no nested quantifier (optional single spaces)",
}

#: Patterns the code only anchors at the start (``.match``/``.fullmatch``): a search
#: would retry them from every position, which the code never does.
MATCH_ONLY: dict[str, str] = {
    r"(?:[A-Za-z0-9-]+\.)?([A-Z][A-Z0-9-]*)[;:]": "vobject_fixes: _PROPERTY_START.match(line)",
    r"[A-Za-z][A-Za-z0-9+.-]*:": "vobject_fixes: _SCHEME.match(value)",
}

#: Characters hostile inputs are built from: every class our patterns use meets a run.
_RUN_CHARS = "a0 \t\r\n;:,=\"\\./-+_()@~<>{}%#*\x00é"
_N = 20_000
#: A linear pass over 20,000 characters takes about a millisecond; a quadratic one
#: (the \\r*\\n split this test found) took 0.4 s.
_BOUND_SECONDS = 0.2


def _modules() -> Iterator[str]:
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            yield ".".join([package, *parts])


def _literal_patterns() -> Iterator[tuple[str, str, int]]:
    """(where, pattern, flags) of literals passed to re.compile/search/sub/... in our code."""
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                        and node.args and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    yield where, node.args[0].value, 0


def all_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """Every pattern Cardfile runs on user input, with where it comes from."""
    found: dict[tuple[str, int], tuple[str, re.Pattern[str]]] = {}
    from vobject import base

    import cardfile.cli.main  # noqa: F401  (the CLI's modules import each other from here)
    import cardfile.plugin  # noqa: F401  (installs the vobject fixes)

    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                found.setdefault((value.pattern, value.flags), (f"{name}.{attr}", value))
    for where, pattern, flags in _literal_patterns():
        compiled = re.compile(pattern, flags)
        found.setdefault((compiled.pattern, compiled.flags), (where, compiled))
    for attr in ("line_re", "params_re", "param_values_re", "logical_lines_re", "wrap_re"):
        value = getattr(base, attr)
        found.setdefault((value.pattern, value.flags), (f"vobject.base.{attr}", value))
    return sorted(found.values(), key=lambda item: item[0])


PATTERNS = all_patterns()


def _unbounded(op: object, av: object) -> bool:
    return op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT) and av[1] == sre_parse.MAXREPEAT  # type: ignore[index]


def _has_unbounded_repeat(items: object) -> bool:
    for op, av in items:  # type: ignore[attr-defined]
        if op in (sre_parse.POSSESSIVE_REPEAT, sre_parse.ATOMIC_GROUP):
            continue  # cannot backtrack into
        if _unbounded(op, av):
            return True
        for child in _children(op, av):
            if _has_unbounded_repeat(child):
                return True
    return False


def _children(op: object, av: object) -> Iterator[object]:
    if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
        yield av[2]  # type: ignore[index]
    elif op is sre_parse.SUBPATTERN:
        yield av[3]  # type: ignore[index]
    elif op is sre_parse.BRANCH:
        yield from av[1]  # type: ignore[index]
    elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
        yield av[1]  # type: ignore[index]
    elif op is sre_parse.ATOMIC_GROUP:
        yield av
    elif op is sre_parse.GROUPREF_EXISTS:
        yield from (x for x in av[1:] if x is not None)  # type: ignore[index]


def nested_quantifier(pattern: str, flags: int) -> bool:
    """A repeat (of more than a bounded count) whose body holds an unbounded repeat."""
    def walk(items: object) -> bool:
        for op, av in items:  # type: ignore[attr-defined]
            if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT) and av[1] > 1:
                if _has_unbounded_repeat(av[2]):
                    return True
            for child in _children(op, av):
                if walk(child):
                    return True
        return False
    return walk(sre_parse.parse(pattern, flags))


def test_the_checks_find_the_patterns_and_catch_a_bad_one() -> None:
    assert len(PATTERNS) > 30, [w for w, _ in PATTERNS]
    from vobject import base

    assert any(p.pattern == base.line_re.pattern for _, p in PATTERNS)
    assert nested_quantifier(r"(a+)+$", 0) and nested_quantifier(r"(?:;x(?:=v*)?)*", 0)
    assert not nested_quantifier(r"(?:;x(?:=v*+)?)*+", 0) and not nested_quantifier(r"a+b+", 0)
    slow = re.compile(r"\r*\n")
    assert _worst_seconds(slow, ["\r" * 2 * _N + "x"]) > _BOUND_SECONDS  # quadratic: seen


@pytest.mark.parametrize("where,pattern", PATTERNS, ids=[w for w, _ in PATTERNS])
def test_no_nested_quantifier(where: str, pattern: re.Pattern[str]) -> None:
    if pattern.pattern in ALLOWED_NESTED:
        return
    assert not nested_quantifier(pattern.pattern, pattern.flags & ~re.UNICODE), (
        f"{where}: {pattern.pattern!r} nests a quantifier inside another; make the inner "
        "one possessive (*+, ++) or atomic ((?>...)), or allow it here with a reason")


def _hostile_inputs() -> Iterator[str]:
    for ch in _RUN_CHARS:
        yield ch * _N + "\x01"
    yield "data:" + "a" * _N
    yield "data:" + ";a" * (_N // 2)
    yield "TEL;X" + "=" * _N
    yield "TEL;X" + "=," * (_N // 2) + '"'
    yield "item1." * (_N // 6) + "X"
    yield "a." * (_N // 2)
    yield "\r" * _N + "x\n"
    yield " :::" * (_N // 4)
    yield "0" * _N + "x"


def _worst_seconds(pattern: re.Pattern[str], inputs: list[str]) -> float:
    uses = ((pattern.match, pattern.fullmatch) if pattern.pattern in MATCH_ONLY
            else (pattern.search, pattern.match, pattern.findall))
    worst = 0.0
    for text in inputs:
        for use in uses:
            started = time.perf_counter()
            use(text)
            worst = max(worst, time.perf_counter() - started)
    return worst


HOSTILE = list(_hostile_inputs())


@pytest.mark.parametrize("where,pattern", PATTERNS, ids=[w for w, _ in PATTERNS])
def test_worst_inputs_take_linear_time(where: str, pattern: re.Pattern[str]) -> None:
    seconds = _worst_seconds(pattern, HOSTILE)
    assert seconds < _BOUND_SECONDS, f"{where}: {pattern.pattern!r} took {seconds:.2f} s"


# Cards whose lines made vobject's content-line regex backtrack exponentially (30 '='
# took minutes, holding the GIL), and others shaped after the patterns above.
HOSTILE_CARD_LINES = [
    "TEL;X" + "=" * 40,
    "TEL;X" + "=," * 5000 + '"',
    "NOTE:" + "\\," * 20000,
    "PHOTO:data:" + "a" * 50000,
    "PHOTO:data:image/png" + ";a" * 20000,
    "URL:" + "a" * 50000,
    "item1." * 5000 + "EMAIL:x@example.org",
]


def test_hostile_cards_are_answered_quickly_and_hold_up_no_one(server: ServerProcess,
                                                               dav: DavClient) -> None:
    assert dav.put("calm.vcf", card("calm", "Calm Card"))[0] == 201
    for number, line in enumerate(HOSTILE_CARD_LINES):
        body = (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:h{number}\r\nFN:H\r\n{line}\r\n"
                "END:VCARD\r\n")
        answered: dict[str, float] = {}
        neighbour = threading.Thread(target=_get_meanwhile, args=(dav, answered))
        neighbour.start()
        started = time.monotonic()
        status, _, _ = dav.put(f"h{number}.vcf", body)
        took = time.monotonic() - started
        neighbour.join(30)
        assert status < 500 and took < 5, (line[:40], status, took)
        assert answered.get("get", 99) < 2, (line[:40], answered)


def _get_meanwhile(dav: DavClient, answered: dict[str, float]) -> None:
    """Another request while the hostile card is being parsed: it must not wait."""
    time.sleep(0.2)
    started = time.monotonic()
    if dav.get("calm.vcf")[0] == 200:
        answered["get"] = time.monotonic() - started
