"""Silent TCP connections to the TLS port: counted against `max_connections` from accept,
dropped after the TLS handshake timeout, and never able to lock the machine's owner out of
the Unix sockets, even when they outnumber the process's file descriptors."""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from tests.proving.stack import Stack, health_watch, make_stack, stable_held
from tests.support.flood import closed_by_server, open_silent
from tests.support.process import short_tmp_dir

pytestmark = pytest.mark.slow

FD_LIMIT = 256
FLOOD = 1000


def _wait_closed(socks: list[socket.socket], *, count: int, within: float) -> int:
    """How many of `socks` the server has closed, waiting up to `within` s for `count`."""
    closed: set[int] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for i, sock in enumerate(socks):
            if i not in closed and closed_by_server(sock):
                closed.add(i)
        if len(closed) >= count:
            break
        time.sleep(0.05)
    return len(closed)


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
        with health_watch(stack) as watch:
            socks = open_silent(stack.port, 4 * cap)
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
    assert set(watch.public) == {200}, watch.public
    assert set(watch.admin) == {200}, watch.admin


def test_a_silent_connection_is_dropped_after_the_tls_handshake_timeout() -> None:
    env = {"PATINA_TLS_HANDSHAKE_TIMEOUT_SECS": "1"}
    with running(env) as stack:
        baseline = stable_held(stack.pid)
        socks = open_silent(stack.port, 20)
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
        with health_watch(stack) as watch:
            socks = open_silent(stack.port, FLOOD)
            try:
                # Until the server has dealt with the whole flood (closed what is over
                # its cap), then a while longer under the full flood.
                closed = _wait_closed(socks, count=FLOOD - FD_LIMIT, within=120)
                stable_held(stack.pid)
                before = watch.answered
                while watch.answered < before + 20:
                    time.sleep(0.05)
            finally:
                for sock in socks:
                    sock.close()
        with stack.tls() as client:
            assert client.get("/metrics").status_code == 200
        log = stack.service.log()
    assert set(watch.public) == {200}, watch.public
    assert set(watch.admin) == {200}, watch.admin
    assert closed >= FLOOD - FD_LIMIT
    assert "TCP connections capped at" in log  # and the operator is told why
