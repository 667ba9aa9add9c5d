"""Slow and greedy clients: slow headers, slow bodies, thousands of idle connections and a
flood of queries that time out. Afterwards threads and fds are back to their baseline,
gate slots are free again, and `/health` answered all along.

The service runs with small limits so the test is quick: 1 s header and body timeouts, a
connection cap of 100 per listener, 2 query slots and a 1 ms query deadline.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import socket
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.proving.stack import Held, Stack, health_watch, make_stack, stable_held
from tests.support.process import short_tmp_dir

pytestmark = pytest.mark.slow

CAP = 100
SLOTS = 2
IDLE_CONNECTIONS = 2000


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    home = short_tmp_dir("sc")
    stack = make_stack(
        home,
        knowledge=True,
        env={
            "PATINA_HEADER_TIMEOUT_SECS": "1",
            "PATINA_BODY_TIMEOUT_SECS": "1",
            "PATINA_MAX_CONNECTIONS": str(CAP),
            "PATINA_MAX_CONCURRENT_QUERIES": str(SLOTS),
            "PATINA_QUERY_TIMEOUT_MS": "1",
        },
    )
    try:
        stack.service.start(timeout=120)
        _warm_up(stack)
        yield stack
    finally:
        stack.service.kill()
        shutil.rmtree(home, ignore_errors=True)


def _warm_up(stack: Stack) -> None:
    """Create the threads a service keeps (query workers, TLS) before taking a baseline."""
    with concurrent.futures.ThreadPoolExecutor(SLOTS) as pool:
        for _ in range(3):
            list(pool.map(lambda _: _scry(stack), range(SLOTS)))
    with stack.tls() as tls, stack.admin() as admin:
        tls.get("/health")
        admin.get("/admin/status")


# Long enough that embedding it takes far longer than the 1 ms deadline even when the event
# loop notices the deadline late (a short query could finish first and answer 200).
SLOW_QUERY = "retry backoff policy " * 100


def _scry(stack: Stack) -> int:
    with stack.uds(timeout=30) as client:
        return client.post("/api/scry", json={"query": SLOW_QUERY}).status_code


def _baseline(stack: Stack) -> Held:
    return stable_held(stack.pid)


def _assert_back_to(stack: Stack, baseline: Held) -> None:
    # One stable snapshot answers both the counts and which fds they are.
    now = stable_held(stack.pid, limit=baseline)
    assert now.fd_count <= baseline.fd_count, (
        f"fds {now.fd_count} > baseline {baseline.fd_count}; new: {now.new_since(baseline)}"
    )
    assert now.threads <= baseline.threads, f"threads {now.threads} > {baseline.threads}"


def _raw(stack: Stack) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(stack.service.socket))
    return sock


def _drain(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_slow_headers_and_slow_bodies_are_cut_off(stack: Stack) -> None:
    baseline = _baseline(stack)
    with health_watch(stack) as watch:
        slow_headers = [_raw(stack) for _ in range(40)]
        slow_bodies = [_raw(stack) for _ in range(40)]
        for sock in slow_headers:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
        for sock in slow_bodies:
            sock.sendall(
                b"POST /api/scry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
        answers = [_drain(sock) for sock in slow_headers + slow_bodies]
        for sock in slow_headers + slow_bodies:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), set(a[:40] for a in answers)
    assert all(b'{"error":' in a.replace(b'": ', b'":') for a in answers)
    assert set(watch.public) == {200}, watch.public
    assert set(watch.admin) == {200}, watch.admin
    _assert_back_to(stack, baseline)


def test_thousands_of_idle_connections_are_bounded_and_reaped(stack: Stack) -> None:
    baseline = _baseline(stack)
    with health_watch(stack) as watch:
        idle = [_raw(stack) for _ in range(IDLE_CONNECTIONS)]
        # Over the cap a request is refused at once with a 503, not queued.
        with stack.uds(timeout=5) as client:
            busy = client.get("/version")
        # Idle connections are closed by the server after the header timeout.
        closed = sum(_drain(sock, timeout=15) == b"" for sock in idle)
        for sock in idle:
            sock.close()
    assert busy.status_code == 503
    assert closed == IDLE_CONNECTIONS
    # Another listener has its own cap: the admin socket's /health answered all along.
    assert set(watch.admin) == {200}, watch.admin
    assert set(watch.public) <= {200, 503}, watch.public
    _assert_back_to(stack, baseline)
    with stack.uds() as client:
        assert client.get("/health").status_code == 200


def test_refusal_over_the_connection_cap_is_a_json_error(stack: Stack) -> None:
    idle = [_raw(stack) for _ in range(CAP + 10)]
    try:
        with stack.uds(timeout=5) as client:
            busy = client.get("/version")
    finally:
        for sock in idle:
            sock.close()
    assert busy.status_code == 503
    assert busy.headers["content-type"] == "application/json", busy.text
    assert busy.json().keys() == {"error"}


def test_a_flood_of_timing_out_queries_leaks_no_slot_thread_or_fd(stack: Stack) -> None:
    # Warm up first: the first queries open lazily created, bounded resources (read-pool
    # connections, model sessions). A leak per query would show as hundreds of fds after
    # the flood, far above this baseline.
    for _ in range(SLOTS * 3):
        _scry(stack)
    baseline = _baseline(stack)
    with (
        health_watch(stack) as watch,
        concurrent.futures.ThreadPoolExecutor(20) as pool,
    ):
        statuses = Counter(pool.map(lambda _: _scry(stack), range(1000)))
    assert set(statuses) <= {503, 504}, statuses
    assert statuses[504] > 0, statuses
    assert set(watch.public) == {200}, watch.public
    assert set(watch.admin) == {200}, watch.admin
    _assert_back_to(stack, baseline)
    # Every slot came back: one query at a time always gets a slot (and then its deadline),
    # never "busy".
    assert [_scry(stack) for _ in range(SLOTS * 3)] == [504] * (SLOTS * 3)
