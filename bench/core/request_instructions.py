"""Instructions per request, in process: the real public app against the empty FastAPI app.

    .venv/bin/python bench/core/request_instructions.py [--requests 1000] [--routes R,R]

Runs each app under valgrind's callgrind twice, for a few warm-up requests and for that
many plus `--requests`, and prints the difference per request. Instruction counts do not
move with other load on the machine (timings on these shared machines do), so this is how
a change to the request path is measured side by side; what it leaves out is the server
layer (uvicorn, httptools, the socket), the same for both apps. The service's app is
built as in production (bootstrap.open_resources, one pushed secret, the access log on at
INFO into /dev/null) and called as its socket owner. Needs `valgrind`
(scripts/install-system-deps.sh installs it). About a minute per row.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WARMUP = 200
SECRET = ("BENCH_TOKEN", "bench-secret-value-0123456789")


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": None,
        "server": None,
    }


async def _drive(app: Any, path: str, count: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(count):
        await app(_scope(path), receive, send)
    if set(statuses) != {200}:
        raise SystemExit(f"{path}: answers {sorted(set(statuses))}, not only 200")


async def _service(path: str, count: int) -> None:
    from service.app import create_app
    from service.bootstrap import open_resources
    from service.logs import configure_logging
    from service.settings import load_settings
    from service.transport.connection import ConnectionInfo, PeerCred, with_connection

    configure_logging("text", "info")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    home = Path(tempfile.mkdtemp(prefix="pri"))
    settings = load_settings(
        home=home, knowledge={"enabled": False}, secrets={"disable_core_dumps": False}
    )
    try:
        async with open_resources(settings) as resources:
            resources.broker.replace(dict([SECRET]))
            owner = ConnectionInfo("uds", PeerCred(1, os.getuid(), os.getgid()))
            await _drive(with_connection(create_app(resources), owner), path, count)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _fastapi(path: str, count: int) -> None:
    sys.path.insert(0, str(HERE))
    from bare_app import fastapi_app

    await _drive(fastapi_app, path, count)


def _instructions(role: str, path: str, count: int) -> int:
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        + [sys.executable, __file__, "--child", role, path, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def per_request(role: str, path: str, requests: int) -> float:
    return (_instructions(role, path, WARMUP + requests) - _instructions(role, path, WARMUP)) / (
        requests
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--routes",
        type=lambda text: text.split(","),
        default=["/secrets", f"/secrets/{SECRET[0]}"],
        help="comma-separated GET routes of the public app (default /secrets,/secrets/BENCH_TOKEN)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, path, count = args.child
        runner = _service if role == "service" else _fastapi
        asyncio.run(runner(path, int(count)))
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (scripts/install-system-deps.sh)")
    floor = per_request("fastapi", "/hello", args.requests)
    print(f"{'route':24} {'instructions/request':>21} {'FastAPI / route':>16}")
    print(f"{'(empty FastAPI route)':24} {floor:21,.0f} {1:16.2f}")
    for path in args.routes:
        cost = per_request("service", path, args.requests)
        print(f"{path:24} {cost:21,.0f} {floor / cost:16.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
