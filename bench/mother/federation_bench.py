"""Federation benchmark: federated scry over three nodes next to a single-node scry.

    .venv/bin/python bench/mother/federation_bench.py --requests 200

Starts three real `patina serve` processes (a, b, c) on loopback, each serving TLS with
required client certificates (the dev CA) and a bearer token, each with its own index of
an installed library's source (httpx, starlette, click). Node a lists b and c as mothers.
This process asks node a over its Unix socket, one request at a time on a keep-alive
connection, alternating in rounds between:

* single: `POST /api/scry` answered from a's index alone;
* federated: the same request with `"federate": true` (a's index + b + c over mutual TLS,
  merged by reciprocal rank fusion).

Both run for the hybrid mode (an embedding per node: on a 2-core machine the three nodes'
embeddings compete for the cores) and the lexical mode (no model: what is left is the
federation machinery itself: fan-out, TLS, JSON, merge). It prints p50/p99 of each and the
federated - single difference (target: p50 at most single + 5 ms). Everything is gone when
it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from service.devcerts import write_dev_certs  # noqa: E402
from service.fileio import write_private  # noqa: E402
from tests.support.process import PATINA, ServiceProcess, free_port  # noqa: E402

SITE = Path(httpx.__file__).resolve().parents[1]
LIBRARIES = {"a": "httpx", "b": "starlette", "c": "click"}
QUERIES = [
    "send a request and follow redirects",
    "timeout while reading the response body",
    "parse cookies from a header",
    "stream the response in chunks",
    "route a request to an endpoint",
    "middleware that adds headers to every response",
    "command line option with a default value",
    "prompt the user for confirmation",
    "format the help text of a command",
    "websocket connection closed",
    "basic authentication credentials",
    "retry when the connection fails",
    "multipart form data upload",
    "static files served from a directory",
    "environment variable for an option",
    "HTTPStatusError",
]
TARGET_MS = 5.0


@dataclass
class Node:
    name: str
    port: int
    process: ServiceProcess


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def three_nodes(base: Path, threads: int) -> Iterator[dict[str, Node]]:
    certs = write_dev_certs(base / "certs")
    ports = {name: free_port() for name in LIBRARIES}
    tokens = {name: f"pt_bench-{name}-{os.urandom(8).hex()}" for name in LIBRARIES}
    for name, token in tokens.items():
        write_private(base / f"{name}.token", token.encode())
    indexing = []
    for name, library in LIBRARIES.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
        env["PATINA_HOME"] = str(base / name)
        indexing.append(
            subprocess.Popen(
                [PATINA, "index", str(SITE / library), "--repo", library],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    for proc in indexing:
        if proc.wait() != 0:
            raise SystemExit("patina index failed")
    mothers = ""
    for name in ("b", "c"):
        mothers += (
            f'[[mothers]]\nname = "{name}"\nurl = "https://127.0.0.1:{ports[name]}"\n'
            f'token_file = "{base / f"{name}.token"}"\nca_file = "{certs.ca}"\n'
            f'client_cert = "{certs.client}"\nclient_key = "{certs.client_key}"\n'
            "timeout_ms = 5000\n\n"
        )
    nodes: dict[str, Node] = {}
    try:
        for name in LIBRARIES:
            config = base / f"{name}.toml"
            config.write_text(mothers if name == "a" else "")
            args = ["--config", str(config), "--tcp", f"127.0.0.1:{ports[name]}"]
            args += ["--tls-cert", str(certs.server), "--tls-key", str(certs.server_key)]
            args += ["--tls-client-ca", str(certs.ca)]
            env = {
                "PATINA_SERVE_TOKEN": tokens[name],
                "PATINA_KNOWLEDGE__ENABLED": "true",
                "PATINA_KNOWLEDGE__INTRA_OP_THREADS": str(threads),
                "PATINA_QUERY_TIMEOUT_MS": "30000",
            }
            nodes[name] = Node(name, ports[name], ServiceProcess(base / name, args, env))
            nodes[name].process.start(wait=False)
        for node in nodes.values():
            node.process.wait_ready(timeout=180)
        yield nodes
    finally:
        for node in nodes.values():
            node.process.kill()


def measure(
    client: httpx.Client, *, mode: str, federate: bool, limit: int, count: int
) -> tuple[list[float], list[dict[str, float]]]:
    latencies: list[float] = []
    node_latency: list[dict[str, float]] = []
    for i in range(count):
        body: dict[str, object] = {"query": QUERIES[i % len(QUERIES)], "mode": mode}
        body["limit"] = limit
        if federate:
            body["federate"] = True
        started = time.perf_counter()
        response = client.post("/api/scry", json=body)
        latencies.append((time.perf_counter() - started) * 1000)
        answer = response.json()
        if response.status_code != 200:
            raise SystemExit(f"scry failed: {response.status_code} {answer}")
        if federate:
            statuses = {s["node"]: s for s in answer["nodes"]}
            if any(s["status"] != "ok" for s in statuses.values()):
                raise SystemExit(f"a node failed: {answer['nodes']}")
            node_latency.append({n: s["latency_ms"] for n, s in statuses.items()})
    return latencies, node_latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per mode and kind")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="ONNX intra-op threads/node")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mb", dir="/tmp"))
    try:
        with three_nodes(base, args.threads) as nodes:
            a = nodes["a"].process
            with a.client(timeout=60) as client:
                counts = {}
                for name, node in nodes.items():
                    with node.process.client() as c:
                        status = c.get("/metrics").text
                    chunks = [
                        line for line in status.splitlines() if line.startswith("knowledge_chunks")
                    ]
                    counts[name] = chunks[0].split()[-1] if chunks else "?"
                print(f"chunks per node: {counts}; load average {os.getloadavg()[0]:.1f}")
                per_round = max(1, args.requests // args.rounds)
                for mode in ("lexical", "hybrid"):
                    # Warm every path (connections, TLS sessions, model caches) first.
                    measure(client, mode=mode, federate=True, limit=args.limit, count=10)
                    measure(client, mode=mode, federate=False, limit=args.limit, count=10)
                    single: list[float] = []
                    federated: list[float] = []
                    per_node: list[dict[str, float]] = []
                    for _ in range(args.rounds):
                        s, _n = measure(
                            client, mode=mode, federate=False, limit=args.limit, count=per_round
                        )
                        f, n = measure(
                            client, mode=mode, federate=True, limit=args.limit, count=per_round
                        )
                        single += s
                        federated += f
                        per_node += n
                    report(mode, single, federated, per_node)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(
    mode: str, single: list[float], federated: list[float], per_node: list[dict[str, float]]
) -> None:
    s50, s99 = percentile(single, 0.5), percentile(single, 0.99)
    f50, f99 = percentile(federated, 0.5), percentile(federated, 0.99)
    print(f"\nmode {mode}: {len(single)} requests each, interleaved")
    print(f"  single-node scry   p50 {s50:8.2f} ms  p99 {s99:8.2f} ms")
    print(f"  federated (3 nodes) p50 {f50:8.2f} ms  p99 {f99:8.2f} ms")
    verdict = "met" if f50 - s50 <= TARGET_MS else "NOT met"
    print(f"  federated - single p50 {f50 - s50:+.2f} ms (target <= +{TARGET_MS} ms: {verdict})")
    nodes = sorted({name for row in per_node for name in row})
    medians = {name: statistics.median(row[name] for row in per_node) for name in nodes}
    print("  per-node latency inside federated p50: " + json.dumps(medians))


if __name__ == "__main__":
    main()
