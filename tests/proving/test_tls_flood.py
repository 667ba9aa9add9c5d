"""Silent TCP connections to the TLS port: counted against `max_connections` from accept,
dropped after the TLS handshake timeout, and never able to lock the machine's owner out of
the Unix sockets, even when they outnumber the process's file descriptors."""

from __future__ import annotations

import contextlib
import errno
import resource
import select
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.proving.stack import Stack, make_stack, stable_held
from tests.support.process import short_tmp_dir

pytestmark = pytest.mark.slow

FD_LIMIT = 256
FLOOD = 1000


def _open_silent(port: int, count: int) -> list[socket.socket]:
    """`count` TCP connections that never send a byte (connect not awaited: the flood
    outruns the listen backlog, as a real one does)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        result = sock.connect_ex(("127.0.0.1", port))
        assert result in (0, errno.EINPROGRESS), errno.errorcode.get(result)
        socks.append(sock)
    return socks


def _readable(sock: socket.socket) -> bool:
    # poll, not select: the flood's descriptors go past select's limit of 1024.
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed or reset this connection (it sent nothing else)."""
    if not _readable(sock):
        return False
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
        return True
    except BlockingIOError:
        return False


def _wait_closed(socks: list[socket.socket], *, count: int, within: float) -> int:
    """How many of `socks` the server has closed, waiting up to `within` s for `count`."""
    closed: set[int] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for i, sock in enumerate(socks):
            if i not in closed and _closed_by_server(sock):
                closed.add(i)
        if len(closed) >= count:
            break
        time.sleep(0.05)
    return len(closed)


@dataclass
class UdsWatch:
    """Polls /health on the public and admin sockets while a test runs."""

    stack: Stack
    answers: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            for name, connect in (("public", self.stack.uds), ("admin", self.stack.admin)):
                try:
                    with connect(timeout=10) as client:
                        self.answers[f"{name}:{client.get('/health').status_code}"] += 1
                except httpx.HTTPError as exc:
                    self.answers[f"{name}:{type(exc).__name__}"] += 1
            time.sleep(0.05)


@contextlib.contextmanager
def uds_watch(stack: Stack) -> Iterator[UdsWatch]:
    watch = UdsWatch(stack)
    thread = threading.Thread(target=watch.run)
    thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join(60)


@contextlib.contextmanager
def running(env: dict[str, str], prefix: list[str] | None = None) -> Iterator[Stack]:
    home = short_tmp_dir("fl")
    stack = make_stack(home, env=env)
    stack.service.prefix = prefix or []
    try:
        stack.service.start(timeout=60)
        yield stack
    finally:
        stack.service.kill()
        shutil.rmtree(home, ignore_errors=True)


def test_silent_tls_connections_count_from_accept_and_the_rest_are_closed_at_once() -> None:
    cap = 50
    # A handshake timeout far longer than the test: only the cap can explain closures.
    env = {"PATINA_MAX_CONNECTIONS": str(cap), "PATINA_TLS_HANDSHAKE_TIMEOUT_SECS": "60"}
    with running(env) as stack:
        baseline = stable_held(stack.pid)
        with uds_watch(stack) as watch:
            socks = _open_silent(stack.port, 4 * cap)
            try:
                closed = _wait_closed(socks, count=3 * cap, within=60)
                held = stable_held(stack.pid)
            finally:
                for sock in socks:
                    sock.close()
        with stack.tls() as client:
            assert client.get("/metrics").status_code == 200
    assert closed >= 3 * cap
    assert held.fd_count - baseline.fd_count <= cap, held.new_since(baseline)
    assert set(watch.answers) == {"public:200", "admin:200"}, watch.answers


def test_a_silent_connection_is_dropped_after_the_tls_handshake_timeout() -> None:
    env = {"PATINA_TLS_HANDSHAKE_TIMEOUT_SECS": "1"}
    with running(env) as stack:
        baseline = stable_held(stack.pid)
        socks = _open_silent(stack.port, 20)
        try:
            # asyncio's own default would hold them for 60 s.
            closed = _wait_closed(socks, count=20, within=30)
        finally:
            for sock in socks:
                sock.close()
        after = stable_held(stack.pid, limit=baseline)
    assert closed == 20
    assert after.fd_count <= baseline.fd_count, after.new_since(baseline)


def test_the_unix_sockets_keep_answering_while_the_tcp_port_is_flooded_past_the_fd_limit() -> None:
    env = {"PATINA_TLS_HANDSHAKE_TIMEOUT_SECS": "60"}
    prlimit = shutil.which("prlimit")
    assert prlimit is not None, "prlimit (util-linux) is needed"
    with running(env, prefix=[prlimit, f"--nofile={FD_LIMIT}:{FD_LIMIT}"]) as stack:
        with uds_watch(stack) as watch:
            socks = _open_silent(stack.port, FLOOD)
            try:
                # Until the server has dealt with the whole flood (closed what is over
                # its cap), then a while longer under the full flood.
                closed = _wait_closed(socks, count=FLOOD - FD_LIMIT, within=120)
                stable_held(stack.pid)
                before = sum(watch.answers.values())
                while sum(watch.answers.values()) < before + 20:
                    time.sleep(0.05)
            finally:
                for sock in socks:
                    sock.close()
        with stack.tls() as client:
            assert client.get("/metrics").status_code == 200
        log = stack.service.log()
    assert set(watch.answers) == {"public:200", "admin:200"}, watch.answers
    assert closed >= FLOOD - FD_LIMIT
    assert "TCP connections capped at" in log  # and the operator is told why
