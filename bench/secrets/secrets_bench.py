"""Secrets broker benchmark: a secret read over the UDS, and pushes of 10 and 1,000 secrets,
next to a bare uvicorn app on the same kind of socket, in one run.

    .venv/bin/python bench/secrets/secrets_bench.py --seconds 5

* read: `GET /secrets/NAME` as the socket owner (policy check, audit record, metrics) on
  keep-alive connections, closed loop, against the raw-ASGI hello world under plain uvicorn
  (uvloop + httptools) answering the same request: p50/p99 and the ratio.
* push: `PUT /admin/secrets` of 10 and 1,000 secrets over the admin socket (keep-alive),
  each repeated, against the same body sent to the bare app: p50/p99 of the round trip.

Everything lives in a private temp dir and every process it started is gone when it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "core"))
from http_bench import Target, build_request, drive  # noqa: E402

BIN = Path(sys.executable).parent
READ_P99_TARGET_MS = 2.0
PUSH10_TARGET_MS = 5.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_socket(path: Path, proc: subprocess.Popen[bytes], url: str = "/health") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        if path.exists():
            with contextlib.suppress(httpx.HTTPError), client(path) as c:
                c.get(url)
                return
        time.sleep(0.05)
    raise RuntimeError(f"{path} not ready")


def client(path: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://b")


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[tuple[Path, Path, Path]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    env.update({"PATINA_HOME": str(tmp / "home"), "PATINA_KNOWLEDGE__ENABLED": "false"})
    env["PATINA_LOG_LEVEL"] = "warning"
    bare_sock = tmp / "bare.sock"
    procs = [
        subprocess.Popen([str(BIN / "patina"), "serve"], env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen(
            [
                str(BIN / "uvicorn"),
                "bare_app:app",
                "--app-dir",
                str(HERE.parent / "core"),
                "--uds",
                str(bare_sock),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],  # fmt: skip
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        run = tmp / "home" / "run"
        wait_socket(run / "serve.sock", procs[0])
        wait_socket(run / "admin.sock", procs[0], "/admin/status")
        wait_socket(bare_sock, procs[1])
        yield run / "serve.sock", run / "admin.sock", bare_sock
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def read_latencies(sock: Path, path: str, conns: int, seconds: float) -> list[float]:
    run, _, _ = await drive(
        Target(uds=str(sock)),
        build_request(path, token=None),
        connections=conns,
        warmup=1.0,
        seconds=seconds,
    )
    if run.errors:
        raise RuntimeError(f"{run.errors} errors: {run.bad_status!r}")
    return [ns / 1e6 for ns in run.latencies]


def push_latencies(sock: Path, count: int, repeat: int) -> list[float]:
    body = json.dumps(
        {"secrets": {f"SECRET_{i:04d}": f"value-{i:04d}-" + "x" * 40 for i in range(count)}}
    ).encode()
    out: list[float] = []
    with client(sock) as c:
        headers = {"content-type": "application/json"}
        for i in range(repeat + 5):
            started = time.perf_counter()
            response = c.put("/admin/secrets", content=body, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"push answered {response.status_code}")
            if i >= 5:  # warm-up
                out.append(elapsed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=200, help="pushes per size")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="psb", dir="/tmp"))
    try:
        with servers(tmp) as (public, admin, bare):
            with client(admin) as c:
                c.put("/admin/secrets", json={"secrets": {"API_KEY": "bench-value-" + "x" * 32}})
            print(f"secret read over UDS, keep-alive, {args.seconds:.0f}s per cell")
            print(f"{'conns':>5} {'target':<22} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
            for conns in (1, 4):
                rows = {}
                for name, sock, path in (
                    ("service GET /secrets/X", public, "/secrets/API_KEY"),
                    ("service GET /health", public, "/health"),
                    ("bare uvicorn", bare, "/secrets/API_KEY"),
                ):
                    lat = uvloop.run(read_latencies(sock, path, conns, args.seconds))
                    rows[name] = lat
                    rps = len(lat) / args.seconds
                    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
                    print(f"{conns:>5} {name:<22} {p50:8.3f} {p99:8.3f} {rps:8.0f}")
                svc, base = rows["service GET /secrets/X"], rows["bare uvicorn"]
                print(
                    f"{'':>5} {'ratio service/bare':<22} {pct(svc, 0.5) / pct(base, 0.5):8.2f}"
                    f" {pct(svc, 0.99) / pct(base, 0.99):8.2f}"
                )
            print(f"\npush over the admin socket, keep-alive, {args.repeat} pushes per size")
            print(f"{'secrets':>7} {'target':<22} {'p50 ms':>8} {'p99 ms':>8}")
            for count in (10, 1000):
                svc = push_latencies(admin, count, args.repeat)
                base = push_latencies(bare, count, args.repeat)
                print(f"{count:>7} {'service PUT':<22} {pct(svc, 0.5):8.3f} {pct(svc, 0.99):8.3f}")
                print(
                    f"{count:>7} {'bare uvicorn':<22} {pct(base, 0.5):8.3f} {pct(base, 0.99):8.3f}"
                )
            targets = f"read p99 <= {READ_P99_TARGET_MS} ms, push of 10 <= {PUSH10_TARGET_MS} ms"
            print(f"\ntargets: {targets}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
