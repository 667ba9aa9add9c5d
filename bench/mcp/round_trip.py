"""MCP `scry` round trip against the REST route, on the same Unix socket of one real
service, and `patina mcp` (stdio) from spawn to its first answer.

    .venv/bin/python bench/mcp/round_trip.py [--requests 300] [--starts 5]

Starts `patina serve` over this repository's docs/ (indexed first into a temporary home),
then, alternating in rounds so load on the machine hits every column alike:
* REST: `POST /api/scry` with an httpx client over the socket;
* MCP raw: `POST /mcp` with a JSON-RPC `tools/call scry` by the same client (what the
  endpoint costs: the SDK's transport, the tool adapter and the compact rendering);
* MCP SDK: `session.call_tool("scry")` through the SDK's own Streamable HTTP client (what
  an agent's Python client pays in total).
Each column is the p50 and p90 of `--requests` calls with the same query set; the ratios
are against REST. Then `--starts` times, alternating: spawn `patina mcp`, initialize, call
scry, and report the time to the first answer (median and max) and the CPU per start; the
same for a baseline that imports the whole MCP SDK and httpx before running the same
command (as `patina mcp` did before it left out the parts it never uses), and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]
PATINA = str(Path(sys.executable).with_name("patina"))
QUERIES = [
    "how do I roll back a release",
    "secret handles for agents",
    "query deadline and gate",
    "federated scry across mother nodes",
    "scrubber encodings base64",
    "unix socket peer credentials",
]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9) - 1]


def _start_service(home: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    env["PATINA_HOME"] = str(home)
    subprocess.run([PATINA, "index", str(ROOT / "docs")], env=env, check=True, capture_output=True)
    log = (home / "serve.log").open("ab")
    proc = subprocess.Popen(
        [PATINA, "serve", "--log-level", "warning"], env=env, stdout=log, stderr=log
    )
    socket = home / "run" / "serve.sock"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if socket.exists():
            try:
                with _rest_client(socket) as client:
                    if client.get("/health").status_code == 200:
                        return proc
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"patina serve did not start:\n{(home / 'serve.log').read_text()}")


def _rest_client(socket: Path) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://patina.local", timeout=30
    )


def _call(query: str, ident: int) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": ident,
        "method": "tools/call",
        "params": {"name": "scry", "arguments": {"query": query, "limit": 8}},
    }


MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


async def _bench_http(socket: Path, requests: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"REST": [], "MCP raw": [], "MCP SDK": []}
    transport = httpx2.AsyncHTTPTransport(uds=str(socket))
    async with (
        httpx2.AsyncClient(transport=transport, timeout=30) as sdk_http,
        streamable_http_client("http://patina.local/mcp", http_client=sdk_http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        with _rest_client(socket) as client:
            for i in range(requests + 20):
                query = QUERIES[i % len(QUERIES)]
                started = time.perf_counter()
                rest = client.post("/api/scry", json={"query": query, "limit": 8})
                rest_secs = time.perf_counter() - started
                assert rest.status_code == 200, rest.text
                started = time.perf_counter()
                raw = client.post("/mcp", json=_call(query, i), headers=MCP_HEADERS)
                raw_secs = time.perf_counter() - started
                assert raw.status_code == 200, raw.text
                assert not raw.json()["result"].get("isError"), raw.text
                started = time.perf_counter()
                answer = await session.call_tool("scry", {"query": query, "limit": 8})
                sdk_secs = time.perf_counter() - started
                assert not answer.is_error
                if i >= 20:  # warm-up rounds are not counted
                    times["REST"].append(rest_secs)
                    times["MCP raw"].append(raw_secs)
                    times["MCP SDK"].append(sdk_secs)
    return times


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# `patina mcp` with the SDK's package __init__s and httpx (with its CLI) imported first, so
# service/mcp/lean_start.py finds nothing left to skip.
BASELINE = (
    "import httpx, mcp, sys; sys.argv = ['patina', 'mcp']; "
    "from service.cli.main import main; main()"
)
STARTS = {
    "patina mcp": (PATINA, ["mcp"]),
    "baseline (whole SDK, httpx CLI)": (sys.executable, ["-c", BASELINE]),
}


async def _first_answer(home: Path, command: str, args: list[str]) -> float:
    params = StdioServerParameters(command=command, args=args, env={"PATINA_HOME": str(home)})
    started = time.perf_counter()
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            answer = await session.call_tool("scry", {"query": QUERIES[0]})
            elapsed = time.perf_counter() - started
    assert not answer.is_error
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mcpb", dir="/tmp"))
    proc = _start_service(home)
    try:
        socket = home / "run" / "serve.sock"
        times = asyncio.run(_bench_http(socket, args.requests))
        starts: dict[str, list[float]] = {name: [] for name in STARTS}
        # CPU of the exited processes (start, one answer, exit): moves less with the
        # machine's load than the wall time does.
        cpu: dict[str, float] = dict.fromkeys(STARTS, 0.0)
        for _ in range(args.starts):
            for name, (command, command_args) in STARTS.items():
                cpu_before = _children_cpu()
                starts[name].append(asyncio.run(_first_answer(home, command, command_args)))
                cpu[name] += _children_cpu() - cpu_before
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(home, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cpus")
    rest_p50, _ = _percentiles(times["REST"])
    print(f"{'scry over the socket':<22}{'p50 ms':>9}{'p90 ms':>9}{'p50 / REST':>12}")
    for name, samples in times.items():
        p50, p90 = _percentiles(samples)
        print(f"{name:<22}{p50 * 1e3:>9.2f}{p90 * 1e3:>9.2f}{p50 / rest_p50:>12.2f}")
    print(f"stdio, spawn to first scry answer, {args.starts} starts each (alternating):")
    print(f"{'':<34}{'median s':>9}{'max s':>8}{'CPU s':>8}{'median / baseline':>19}")
    baseline = statistics.median(starts["baseline (whole SDK, httpx CLI)"])
    for name, samples in starts.items():
        median = statistics.median(samples)
        print(
            f"{name:<34}{median:>9.3f}{max(samples):>8.3f}{cpu[name] / args.starts:>8.3f}"
            f"{median / baseline:>19.2f}"
        )
    print(json.dumps({"requests": args.requests, "starts": args.starts}))


if __name__ == "__main__":
    main()
