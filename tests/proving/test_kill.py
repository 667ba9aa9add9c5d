"""Kill test: SIGKILL the service mid-request, again and again, on the same home.

Each restart must find the dead server's sockets, recognise them as stale and serve again;
nothing it held in memory (tripwire secrets) may be found on disk; the audit log, written
one line per event with O_APPEND, must still parse line by line.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proving.stack import Stack, accepts, make_stack
from tests.support.process import short_tmp_dir, uds_client

pytestmark = pytest.mark.slow

KILLS = 20
TRIPWIRE = "tripwire-kill-7c21e0-DO-NOT-LEAK"
# A functional bound only (the machine may be busy); the measured figures are printed and
# recorded in BENCHMARKS.md, where the 2 s target is judged.
READY_BOUND_SECS = 15.0


@pytest.fixture
def stack() -> Iterator[Stack]:
    home = short_tmp_dir("kl")
    stack = make_stack(home)
    yield stack
    stack.service.kill()
    shutil.rmtree(home, ignore_errors=True)


def _start_and_time(stack: Stack) -> float:
    """Start the service and answer the seconds until /health answers over the socket."""
    started = time.monotonic()
    stack.service.start(wait=False)
    deadline = started + READY_BOUND_SECS
    while time.monotonic() < deadline:
        assert stack.service.proc is not None
        if stack.service.proc.poll() is not None:
            raise AssertionError(f"restart failed:\n{stack.service.log()[-3000:]}")
        if accepts(stack.service.socket):
            with contextlib.suppress(httpx.HTTPError), uds_client(stack.service.socket) as c:
                if c.get("/health", timeout=1).status_code == 200:
                    return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"not ready in {READY_BOUND_SECS}s:\n{stack.service.log()[-3000:]}")


def _half_sent_upload(path: Path) -> socket.socket:
    """A connection in the middle of a request: headers and part of a declared body."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    body = json.dumps({"secrets": {"PARTIAL": TRIPWIRE}}).encode()
    head = b"PUT /admin/secrets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sock.sendall(head + b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body)
    return sock


def _hammer(stack: Stack, stop: threading.Event) -> None:
    """Reads, pushes and health checks in flight until the server dies."""
    with (
        contextlib.suppress(httpx.HTTPError, OSError),
        stack.uds(timeout=5) as client,
        stack.admin(timeout=5) as admin,
    ):
        while not stop.is_set():
            client.get("/secrets/API_KEY")
            admin.put("/admin/secrets", json={"secrets": {"API_KEY": TRIPWIRE}})
            client.get("/health")


# httpcore does not close its socket when a Unix-socket connect is refused, which the
# hammer threads hit by design right after each SIGKILL; that client-side leak is not the
# service's and would otherwise surface as an unraisable ResourceWarning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_sigkill_mid_request_twenty_times_restarts_cleanly(stack: Stack) -> None:
    ready_times = []
    for _ in range(KILLS):
        ready_times.append(_start_and_time(stack))
        stack.push({"API_KEY": TRIPWIRE, "OTHER": TRIPWIRE + "-2"})
        with stack.uds() as client:
            assert client.get("/secrets/API_KEY").json()["value"] == TRIPWIRE
        stop = threading.Event()
        workers = [threading.Thread(target=_hammer, args=(stack, stop)) for _ in range(3)]
        for worker in workers:
            worker.start()
        upload = _half_sent_upload(stack.service.admin_socket)
        time.sleep(0.2)  # requests are in flight on every worker
        stack.service.kill()  # SIGKILL
        stop.set()
        for worker in workers:
            worker.join(10)
        upload.close()
        # What a SIGKILL leaves behind: the socket files, with nobody answering.
        assert stack.service.socket.is_socket()
        assert stack.service.admin_socket.is_socket()

    # One more start, then a clean stop: the stale sockets were handled every time.
    ready_times.append(_start_and_time(stack))
    assert stack.service.stop() == 0
    assert not stack.service.socket.exists()
    log = stack.service.log()
    assert log.count("removing stale socket") >= 2 * KILLS

    sys.stderr.write(
        "restart ready times (s): "
        + " ".join(f"{t:.3f}" for t in ready_times)
        + f"\nmax {max(ready_times):.3f} s, median {statistics.median(ready_times):.3f} s\n"
    )

    home = stack.service.home
    audit = home / "data" / "audit.jsonl"
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert sum(e["event"] == "push" for e in events) >= KILLS
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert TRIPWIRE.encode() not in path.read_bytes(), path
