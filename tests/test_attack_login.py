"""Password guessing: 401 answers that tell nothing, and a per-address throttle.

A 401 body is the same whether the user exists or not (Radicale's log line
"user not found" / "bcrypt" never reaches it). After 5 failed logins within
a minute, an address gets 429 with Retry-After for every request that
carries credentials, right or wrong, on CardDAV and on the JSON API alike;
other addresses log in as usual. Different client addresses are real ones:
a socket bound to 127.0.0.2 reaches the server on 127.0.0.1, which sees
REMOTE_ADDR 127.0.0.2.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import PASSWORD, USER, ServerProcess, start_server
from tests.rawhttp import Answer, basic, request

DEPTH0 = b"Depth: 0\r\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory,
        module_store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("login"), store_config=module_store_config)
    try:
        yield server
    finally:
        server.stop()


def _propfind(srv: ServerProcess, user: str, password: str, source: str) -> Answer:
    return request(srv.port, "PROPFIND", f"/{USER}/", DEPTH0 + basic(user, password),
                   source=source)


def _api(srv: ServerProcess, user: str, password: str, source: str) -> Answer:
    return request(srv.port, "GET", "/api/", basic(user, password), source=source)


def _in_parallel(calls: int, call: object) -> list[Answer]:
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(call()))  # type: ignore[operator]
               for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def test_401_says_nothing_about_the_user_or_the_hash(srv: ServerProcess) -> None:
    unknown = _propfind(srv, "nobody", "guess", "127.0.0.10")
    wrong = _propfind(srv, USER, "guess", "127.0.0.10")
    assert unknown.status == wrong.status == 401
    assert unknown.body == wrong.body
    for word in (b"found", b"htpasswd", b"bcrypt", b"nobody", USER.encode(), b"verif"):
        assert word not in unknown.body.lower()
    api_unknown = _api(srv, "nobody", "guess", "127.0.0.10")
    api_wrong = _api(srv, USER, "guess", "127.0.0.10")
    assert api_unknown.status == api_wrong.status == 401
    assert api_unknown.body == api_wrong.body
    # The log still says what happened, for the administrator.
    assert "Failed login attempt" in srv.log()


def test_failed_logins_throttle_that_address_only(srv: ServerProcess) -> None:
    failures = _in_parallel(5, lambda: _propfind(srv, USER, "guess", "127.0.0.2"))
    assert [a.status for a in failures] == [401] * 5
    # Now even the right password from that address waits, on CardDAV and the API.
    blocked = _propfind(srv, USER, PASSWORD, "127.0.0.2")
    assert blocked.status == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 3600
    assert b"Too many failed logins" in blocked.body
    assert blocked.seconds < 1.0
    api_blocked = _api(srv, USER, PASSWORD, "127.0.0.2")
    assert api_blocked.status == 429
    assert json.loads(api_blocked.body)["status"] == 429
    assert "retry-after" in api_blocked.headers
    # Everyone else is unaffected.
    assert _propfind(srv, USER, PASSWORD, "127.0.0.1").status == 207
    assert _api(srv, USER, PASSWORD, "127.0.0.1").status == 200
    assert _propfind(srv, USER, "guess", "127.0.0.3").status == 401
    assert _propfind(srv, USER, PASSWORD, "127.0.0.3").status == 207


def test_api_failures_count_towards_the_same_throttle(srv: ServerProcess) -> None:
    failures = _in_parallel(5, lambda: _api(srv, "nobody", "guess", "127.0.0.4"))
    assert [a.status for a in failures] == [401] * 5
    assert _propfind(srv, USER, PASSWORD, "127.0.0.4").status == 429
    assert _propfind(srv, USER, PASSWORD, "127.0.0.1").status == 207


def test_the_failed_login_delay_holds_up_no_one_else(srv: ServerProcess) -> None:
    """Radicale sleeps about a second per failed login; others must not wait for it."""
    assert _propfind(srv, USER, PASSWORD, "127.0.0.1").status == 207  # login cached
    results: list[Answer] = []
    attackers = [threading.Thread(target=lambda: results.append(
        _propfind(srv, "nobody", "guess", "127.0.0.5"))) for _ in range(4)]
    for thread in attackers:
        thread.start()
    try:
        time.sleep(0.3)  # the attackers' passwords are checked; they sleep now
        answer = _propfind(srv, USER, PASSWORD, "127.0.0.1")
        assert answer.status == 207
        assert answer.seconds < 1.0, f"waited {answer.seconds:.1f} s behind failed logins"
    finally:
        for thread in attackers:
            thread.join(timeout=30)
    assert [a.status for a in results] == [401] * 4


def test_a_burst_of_guesses_gets_no_more_checks_than_the_limit(srv: ServerProcess) -> None:
    """Fifty wrong passwords sent at once: five are checked, the rest find the block."""
    answers = _in_parallel(50, lambda: _propfind(srv, USER, f"guess-{time.monotonic_ns()}",
                                                 "127.0.0.6"))
    statuses = sorted(a.status for a in answers)
    assert len(statuses) == 50
    assert statuses.count(401) == 5, statuses
    assert statuses.count(429) == 45, statuses
    assert all("retry-after" in a.headers for a in answers if a.status == 429)
    assert _propfind(srv, USER, PASSWORD, "127.0.0.6").status == 429


def test_a_client_that_logged_in_is_not_held_back_by_its_own_parallel_requests(
        srv: ServerProcess) -> None:
    """A phone opening many connections at once, the first time and every time after."""
    first = _in_parallel(20, lambda: _propfind(srv, USER, PASSWORD, "127.0.0.7"))
    assert [a.status for a in first] == [207] * 20
    answers = _in_parallel(20, lambda: _propfind(srv, USER, PASSWORD, "127.0.0.7"))
    assert [a.status for a in answers] == [207] * 20


_HOLD_LOGINS = """
import sys, time
from cardfile.plugin.dav.login_throttle import FAILURES, LoginThrottle
throttle = LoginThrottle(path=sys.argv[1])
held = [throttle.begin(sys.argv[2], "Basic never-checked") for _ in range(FAILURES)]
assert all(attempt.reserved for attempt in held)
print("holding", flush=True)
time.sleep(600)
"""


def test_logins_cut_short_by_a_killed_process_do_not_hold_the_address_back(
        srv: ServerProcess) -> None:
    """A server killed mid-login and started again lets its clients straight back in.

    A login not yet known to work holds one of its address's attempts while
    it runs. A process killed (``kill -9``) during as many logins as the
    address may attempt held them all: the restarted server made the
    address's next logins wait ten seconds and answered 429. Here another
    process of the same records file takes them all and is killed.
    """
    import subprocess
    import sys

    from cardfile.plugin.dav.login_throttle import RECORDS_FILE

    address = "127.0.0.21"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOGINS,
                               str(srv.data_dir / RECORDS_FILE), address],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    finally:
        holder.kill()
        holder.wait()
    started = time.monotonic()
    answer = _propfind(srv, USER, PASSWORD, address)
    assert answer.status == 207, answer
    assert time.monotonic() - started < QUEUE_WAIT, "the login waited for logins that had died"


#: How long a login waits for its address's running logins (login_throttle.QUEUE_SECONDS).
QUEUE_WAIT = 10.0
