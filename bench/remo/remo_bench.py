"""remo-broker v2 protocol benchmark: `get` on a project socket and `push-creds` of 10
secrets on the admin socket, side by side with the HTTP routes doing the same, in one run.

    .venv/bin/python bench/remo/remo_bench.py --requests 5000 --pushes 200 --rounds 3

Starts the real `patina serve` (remo enabled, one project socket) in a private temp dir.
One client, one keep-alive connection per row, one request in flight (closed loop), raw
bytes on a blocking socket for every row so the client costs the same for NDJSON and HTTP:

* get:  `{"op":"get"}` on the project socket, `GET /secrets/NAME` over HTTP on the same
        project socket and on the public socket (as its owner), and `{"op":"ping"}` (the
        NDJSON path with no policy, audit or store).
* push: `{"op":"push-creds"}` of 10 secrets vs `PUT /admin/secrets` of the same 10, both
        on the admin socket.

Rows are measured in interleaved rounds (timing is noisy on a shared machine; compare the
rows of one run). remo's NFRs: `get` p99 under 1 ms, `push-creds` of 10 under 20 ms; the
exit code is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
GET_P99_TARGET_US = 1000.0
PUSH10_TARGET_US = 20_000.0
# Token-like values (fixed seed): the answer scrubber compiled at each push costs more for
# long runs of one character than for real tokens.
_RANDOM = random.Random(16)
_ALPHABET = string.ascii_letters + string.digits
SECRETS = {f"SECRET_{i:02d}": "".join(_RANDOM.choices(_ALPHABET, k=40)) for i in range(10)}


class Conn:
    """A blocking Unix-socket connection reading NDJSON lines or HTTP/1.1 responses."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def line(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        while b"\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def http(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for header in head.split(b"\r\n")[1:]:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            self._fill()
            head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest[length:]
        return head.split(b"\r\n", 1)[0] + b" " + rest[:length]

    def close(self) -> None:
        self.sock.close()


def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nhost: bench\r\n"
    if body:
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def measure(call: Callable[[], bytes], count: int, expect: bytes) -> list[float]:
    """Microseconds per call; every answer is checked, a wrong one stops the run."""
    times = []
    for _ in range(count):
        start = time.perf_counter_ns()
        answer = call()
        times.append((time.perf_counter_ns() - start) / 1000)
        if expect not in answer:
            raise RuntimeError(f"unexpected answer: {answer[:200]!r}")
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_service(home: Path) -> subprocess.Popen[bytes]:
    project = {
        "name": "bench",
        "allowlist": list(SECRETS),
        "max_gets_per_minute": 1_000_000,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    env.update(
        PATINA_HOME=str(home),
        PATINA_KNOWLEDGE__ENABLED="false",
        PATINA_REMO__ENABLED="true",
        PATINA_REMO__PROJECTS=json.dumps([project]),
        PATINA_LOG_LEVEL="warning",
    )
    log = (home / "serve.log").open("ab")
    proc = subprocess.Popen([str(BIN / "patina"), "serve"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"patina serve exited {proc.returncode}")
        if (home / "run" / "bench.sock").exists():
            try:
                conn = Conn(home / "run" / "bench.sock")
                conn.line(b'{"op":"ping"}\n')
                conn.close()
                return proc
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("patina serve not ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="gets per row and round")
    parser.add_argument("--pushes", type=int, default=200, help="pushes per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="remo-bench-", dir="/tmp"))
    proc = start_service(home)
    run = home / "run"
    name = "SECRET_00"
    push_line = json.dumps({"op": "push-creds", "secrets": SECRETS}).encode() + b"\n"
    push_body = json.dumps({"secrets": SECRETS}).encode()
    try:
        conns = {
            key: Conn(run / sock)
            for key, sock in [
                ("remo_get", "bench.sock"),
                ("remo_ping", "bench.sock"),
                ("http_project", "bench.sock"),
                ("http_public", "serve.sock"),
                ("remo_push", "admin.sock"),
                ("http_push", "admin.sock"),
            ]
        }
        conns["remo_push"].line(push_line)
        get_line = json.dumps({"op": "get", "name": name}).encode() + b"\n"
        get_http = http_request("GET", f"/secrets/{name}")
        gets: dict[str, tuple[Callable[[], bytes], bytes]] = {
            "remo get (project socket, NDJSON)": (
                lambda: conns["remo_get"].line(get_line),
                b'"value"',
            ),
            "HTTP GET /secrets/X (project socket)": (
                lambda: conns["http_project"].http(get_http),
                b"200",
            ),
            "HTTP GET /secrets/X (public socket)": (
                lambda: conns["http_public"].http(get_http),
                b"200",
            ),
            "remo ping (NDJSON floor)": (
                lambda: conns["remo_ping"].line(b'{"op":"ping"}\n'),
                b'"ok":true',
            ),
        }
        put = http_request("PUT", "/admin/secrets", push_body)
        pushes: dict[str, tuple[Callable[[], bytes], bytes]] = {
            "remo push-creds x10 (admin, NDJSON)": (
                lambda: conns["remo_push"].line(push_line),
                b'"secret_count":10',
            ),
            "HTTP PUT /admin/secrets x10": (lambda: conns["http_push"].http(put), b"200"),
        }
        results: dict[str, list[float]] = {label: [] for label in [*gets, *pushes]}
        for _ in range(args.rounds):
            for label, (call, expect) in gets.items():
                measure(call, 200, expect)  # warm-up
                results[label] += measure(call, args.requests, expect)
            for label, (call, expect) in pushes.items():
                results[label] += measure(call, args.pushes, expect)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)

    print(
        f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1/5 min), cores {os.cpu_count()}"
    )
    print(f"{'row':40} {'n':>6} {'mean us':>9} {'p50 us':>9} {'p99 us':>9}")
    for label, times in results.items():
        mean, p50, p99 = statistics.fmean(times), pct(times, 0.5), pct(times, 0.99)
        print(f"{label:40} {len(times):6d} {mean:9.1f} {p50:9.1f} {p99:9.1f}")
    get_p99 = pct(results["remo get (project socket, NDJSON)"], 0.99)
    push_p99 = pct(results["remo push-creds x10 (admin, NDJSON)"], 0.99)
    ok = get_p99 < GET_P99_TARGET_US and push_p99 < PUSH10_TARGET_US
    print(
        f"targets (remo's NFRs): get p99 < {GET_P99_TARGET_US:.0f} us: {get_p99:.0f} us; "
        f"push-creds x10 p99 < {PUSH10_TARGET_US:.0f} us: {push_p99:.0f} us -> "
        + ("met" if ok else "MISSED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
