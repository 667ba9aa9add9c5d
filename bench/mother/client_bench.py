"""The mother client's cost per request: httpx against service/mother/http1.py.

    .venv/bin/python bench/mother/client_bench.py --requests 3000

One process, one uvloop loop: a canned HTTP/1.1 server on a Unix socket answers every POST
with the same ~7 KB JSON (ten scry results), and each client sends the same federated-scry
POST on a keep-alive connection, one at a time, in interleaved rounds. It prints wall time
and CPU time per request (client and canned server together; the server's share is the
same for both) and their ratio. This is the client overhead a federated scry pays once per
mother node on the asking node's critical path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from service.mother.http1 import Http1Pool, PoolLimits  # noqa: E402

ANSWER = json.dumps(
    {
        "results": [
            {"id": i, "content": "x" * 600, "score": 0.5, "path": f"src/m{i}.py"} for i in range(10)
        ],
        "count": 10,
        "mode": "hybrid",
    }
).encode()
PAYLOAD = {"query": "timeout while reading the response body", "limit": 10, "mode": "hybrid"}
HEADERS = {"Content-Type": "application/json", "X-Patina-Hops": "1"}
# (send one request and parse its answer, close the client)
Client = tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]


async def canned(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            length = int(request.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(head % len(ANSWER) + ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def httpx_client(
    path: str,
) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=path), base_url="http://node", trust_env=False
    )

    async def one() -> object:
        async with client.stream("POST", "/api/scry", json=PAYLOAD, headers=HEADERS) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
        return json.loads(body)

    return one, client.aclose


def http1_client(
    path: str,
) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    pool = Http1Pool(uds=path, limits=PoolLimits(answer_cap=16 << 20))

    async def one() -> object:
        body = json.dumps(PAYLOAD, separators=(",", ":")).encode()
        _status, answer = await pool.request("POST", "/api/scry", body=body, headers=HEADERS)
        return json.loads(answer)

    return one, pool.aclose


async def main(requests: int, rounds: int) -> None:
    path = tempfile.mktemp(prefix="pcl.", dir="/tmp")
    server = await asyncio.start_unix_server(canned, path)
    clients = {"httpx": httpx_client(path), "http1 (ours)": http1_client(path)}
    totals = {name: [0.0, 0.0, 0] for name in clients}
    for one, _close in clients.values():
        for _ in range(200):  # warm-up: connections, code paths
            await one()
    for _ in range(rounds):
        for name, (one, _close) in clients.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(requests // rounds):
                await one()
            totals[name][0] += time.perf_counter() - wall
            totals[name][1] += time.process_time() - cpu
            totals[name][2] += requests // rounds
    for _one, close in clients.values():
        await close()
    server.close()
    Path(path).unlink(missing_ok=True)
    print(f"{'client':14} {'wall us/req':>12} {'cpu us/req':>11}")
    for name, (wall, cpu, count) in totals.items():
        print(f"{name:14} {wall / count * 1e6:12.0f} {cpu / count * 1e6:11.0f}")
    ours, theirs = totals["http1 (ours)"], totals["httpx"]
    print(
        f"httpx / ours: {theirs[0] / ours[0]:.1f}x wall, {theirs[1] / ours[1]:.1f}x CPU "
        "(client + canned server in one process)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="per client")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()
    uvloop.run(main(args.requests, args.rounds))
