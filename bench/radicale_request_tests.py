#!/usr/bin/env python3
"""Run Radicale's own request tests (``radicale/tests/test_base.py``) on Cardfile's storage.

Radicale's tests are in neither its wheel nor its sdist, so they are read from
a Radicale git repository (a bare mirror or a checkout), extracted to a
temporary folder for the run and deleted after it: nothing of Radicale's is
copied into this repository. ``radicale_request_plugin.py`` (ours) is loaded
into that pytest run and makes every ``BaseTest`` use the store asked for:

- ``--store files`` (default): ``[storage] type = cardfile.plugin``.
- ``--store postgresql``: the same with ``backend`` = a database of each
  test's own on a throw-away cluster (tests/pg.py), copied from a template
  that ``cardfile db upgrade`` made.
- ``--store radicale``: Radicale's own ``multifilesystem``, the control. A
  test that fails here too fails because the snapshot's tests and the
  installed Radicale differ, not because of Cardfile.

A failure is expected only when it is listed below with its reason; the run
exits 1 on any other failure (or on a listed one that now passes: the list
must stay true), 2 when the run itself could not be made.

    python bench/radicale_request_tests.py                     # files
    python bench/radicale_request_tests.py --store postgresql
    python bench/radicale_request_tests.py --store radicale    # the control
    python bench/radicale_request_tests.py --radicale ~/src/Radicale -k sync
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path("/work/.mirror/Kozea+Radicale/repo")
PLUGIN = Path(__file__).resolve().with_name("radicale_request_plugin.py")
TESTS = "radicale/tests"
STORES = ("files", "postgresql", "radicale")

#: Failures that are not Cardfile's to fix: test id -> why. A version skew applies
#: to every store (stock storage fails it too: ``--store radicale`` shows it).
VERSION_SKEW: dict[str, str] = {
    "TestBaseRequests::test_report_free_busy": (
        "version skew: the snapshot's test wants one VFREEBUSY per busy/free period; "
        "installed Radicale 3.9.0 answers one VFREEBUSY holding all of them (stock "
        "multifilesystem fails it the same way)"),
}
#: Deliberate differences of Cardfile's storage, per store: test id -> design rule.
CARDFILE_DIFFERENCES: dict[str, dict[str, str]] = {
    "files": {},
    "postgresql": {},
}


class RunError(Exception):
    """The run could not be set up (no Radicale tests, no PostgreSQL...)."""


@dataclass
class Outcome:
    test: str
    status: str  # passed | failed | skipped
    why: str = ""


def expected_failures(store: str) -> dict[str, str]:
    return {**VERSION_SKEW, **CARDFILE_DIFFERENCES.get(store, {})}


# -- where the tests come from ------------------------------------------------------------

def _git(git_dir: Path, *args: str) -> str:
    done = subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RunError(f"git {' '.join(args)} failed in {git_dir}: {done.stderr.strip()}")
    return done.stdout.strip()


def git_dir_of(path: Path) -> Path | None:
    """The git directory of a bare repository or of a checkout, if ``path`` is either."""
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        return path
    if (path / ".git").exists():
        return path / ".git"
    return None


def _version_at(git_dir: Path, commit: str) -> str:
    try:
        text = _git(git_dir, "show", f"{commit}:pyproject.toml")
    except RunError:
        return "?"
    for line in text.splitlines():
        if line.startswith("version = "):
            return line.split("=", 1)[1].strip().strip('"')
    return "?"


def choose_commit(git_dir: Path, wanted_version: str) -> tuple[str, str]:
    """(commit, why): the release tag, else the commit that set the version, else HEAD."""
    tag = f"v{wanted_version}"
    if _git(git_dir, "tag", "--list", tag):
        return _git(git_dir, "rev-parse", f"{tag}^{{commit}}"), f"tag {tag}"
    line = f'version = "{wanted_version}"'
    candidates = _git(git_dir, "log", "--all", "--format=%H", "-S", line, "--",
                      "pyproject.toml").split()
    for commit in reversed(candidates):  # oldest first: the release commit itself
        if _version_at(git_dir, commit) == wanted_version:
            return commit, f"the commit that set {line} in pyproject.toml"
    head = _git(git_dir, "rev-parse", "HEAD")
    return head, (f"HEAD (no tag {tag} and no commit setting version {wanted_version}; "
                  f"the snapshot's version there is {_version_at(git_dir, head)})")


def extract_tests(source: Path, commit: str | None, into: Path, wanted_version: str) -> str:
    """Put ``radicale/tests`` of ``source`` under ``into``; a line saying what was used."""
    if (source / TESTS / "test_base.py").is_file() and not commit:
        shutil.copytree(source / TESTS, into / TESTS)
        return f"the working tree of {source}"
    git_dir = git_dir_of(source)
    if git_dir is None:
        raise RunError(f"{source} is neither a Radicale checkout nor a git directory")
    if commit:
        chosen, why = _git(git_dir, "rev-parse", f"{commit}^{{commit}}"), f"--commit {commit}"
    else:
        chosen, why = choose_commit(git_dir, wanted_version)
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", chosen, TESTS],
                             capture_output=True)
    if archive.returncode != 0:
        raise RunError(f"{chosen} has no {TESTS}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    described = _git(git_dir, "log", "-1", "--format=%h %cs %s", chosen)
    return (f"{git_dir} at {described} (version {_version_at(git_dir, chosen)}), "
            f"chosen as {why}")


# -- the PostgreSQL store -----------------------------------------------------------------

@contextmanager
def postgres_environment() -> Iterator[dict[str, str]]:
    """A throw-away cluster with a template database that ``cardfile db upgrade`` made."""
    sys.path.insert(0, str(REPO))
    from tests.pg import PostgresCluster, binaries

    bin_dir = binaries()
    if bin_dir is None:
        raise RunError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    cluster = PostgresCluster(bin_dir)
    try:
        url = cluster.new_database()
        done = subprocess.run([*cardfile_command(), "db", "upgrade", "--database", url],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RunError(f"cardfile db upgrade failed: {done.stderr.strip()}")
        yield {"CARDFILE_RRT_PG_ADMIN": cluster.url(),
               "CARDFILE_RRT_PG_TEMPLATE": url.rsplit("/", 1)[1]}
    finally:
        cluster.stop()


def cardfile_command() -> list[str]:
    exe = shutil.which("cardfile")
    return [exe] if exe else [sys.executable, "-m", "cardfile.cli.main"]


# -- the run ------------------------------------------------------------------------------

def run_pytest(folder: Path, store: str, extra_env: dict[str, str],
               pytest_args: list[str]) -> tuple[list[Outcome], Path]:
    shutil.copy(PLUGIN, folder / "cardfile_radicale_requests.py")
    (folder / "pytest.ini").write_text("[pytest]\n")  # not Cardfile's pytest settings
    report = folder / "report.xml"
    log = folder / "pytest.log"
    env = {**os.environ, **extra_env, "CARDFILE_RRT_FOLDER": str(folder),
           "CARDFILE_RRT_STORE": store, "PYTHONPATH": str(folder)}
    command = [sys.executable, "-m", "pytest", "-c", str(folder / "pytest.ini"),
               "-p", "cardfile_radicale_requests", "-p", "no:cacheprovider", "-q",
               f"--junitxml={report}", f"{TESTS}/test_base.py", *pytest_args]
    with open(log, "w") as out:
        done = subprocess.run(command, cwd=folder, env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    if done.returncode not in (0, 1) or not report.exists():
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise RunError(f"pytest could not run the tests (exit {done.returncode}):\n{tail}")
    return read_report(report), log


def read_report(report: Path) -> list[Outcome]:
    outcomes = []
    for case in ET.parse(report).iter("testcase"):
        test = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        status, why = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = "skipped" if child.tag == "skipped" else "failed"
                message = child.get("message") or (child.text or "")
                why = next((line.strip() for line in message.splitlines() if line.strip()),
                           child.tag)
        outcomes.append(Outcome(test, status, why))
    return outcomes


def summarise(outcomes: list[Outcome], store: str) -> int:
    """Print the figures and every failure; the number of unexpected results."""
    expected = expected_failures(store)
    passed = [o for o in outcomes if o.status == "passed"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    failed = [o for o in outcomes if o.status == "failed"]
    known = [o for o in failed if o.test in expected]
    unexpected = [o for o in failed if o.test not in expected]
    ran = {o.test for o in outcomes}
    stale = [o for o in passed if o.test in expected]
    print(f"\n{len(outcomes)} tests: {len(passed)} passed, {len(skipped)} skipped, "
          f"{len(failed)} failed")
    if skipped:
        reasons: dict[str, int] = {}
        for o in skipped:
            reasons[o.why] = reasons.get(o.why, 0) + 1
        print("skipped (by Radicale's own tests):")
        for why, count in sorted(reasons.items()):
            print(f"  {count} x {why}")
    if known:
        print(f"{len(known)} expected difference(s):")
        for o in known:
            print(f"  {o.test}: {expected[o.test]}")
            print(f"      ({o.why})")
    if unexpected:
        print(f"{len(unexpected)} UNEXPECTED failure(s):")
        for o in unexpected:
            print(f"  {o.test}: {o.why}")
    if stale:
        print(f"{len(stale)} listed as expected to fail but PASSED (remove from the list):")
        for o in stale:
            print(f"  {o.test}")
    not_run = sorted(t for t in expected if t not in ran)
    if not_run and len(outcomes) > 50:  # a -k selection leaves most of the list out
        print(f"(listed but not run: {', '.join(not_run)})")
    bad = len(unexpected) + len(stale)
    print(f"\n[{store}] {len(passed)} passed, {len(known)} expected differences, "
          f"{bad} unexpected ({len(skipped)} skipped)")
    return bad


def installed_radicale_version() -> str:
    import radicale

    return str(radicale.VERSION)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--radicale", type=Path,
                        default=MIRROR if MIRROR.exists() else None,
                        help=f"a Radicale checkout or git directory (default {MIRROR})")
    parser.add_argument("--commit", help="the commit or tag whose tests to run (default: "
                        "the installed version's release, else HEAD)")
    parser.add_argument("--store", choices=STORES, default="files")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (tests, pytest.log, report.xml)")
    parser.add_argument("pytest_args", nargs="*",
                        help="passed to pytest after --, e.g. -- -k sync -x")
    args = parser.parse_args(argv)
    if args.radicale is None:
        print(f"Error: no Radicale repository: pass --radicale PATH ({MIRROR} is absent)",
              file=sys.stderr)
        return 2
    version = installed_radicale_version()
    folder = Path(tempfile.mkdtemp(prefix="cardfile-radicale-tests-"))
    try:
        used = extract_tests(args.radicale.expanduser(), args.commit, folder, version)
        print(f"Radicale's tests from {used}")
        print(f"installed Radicale {version}; store: {args.store}")
        with store_environment(args.store) as env:
            outcomes, log = run_pytest(folder, args.store, env, args.pytest_args)
        if args.keep:
            print(f"pytest's output: {log}")
        return 1 if summarise(outcomes, args.store) else 0
    except RunError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def store_environment(store: str) -> Iterator[dict[str, str]]:
    if store == "postgresql":
        with postgres_environment() as env:
            yield env
    else:
        yield {}


if __name__ == "__main__":
    sys.exit(main())
