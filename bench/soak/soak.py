"""Soak: N clients mixing scry, secret reads, health and pushes at about R Hz each for D
seconds against a real `patina serve` (knowledge on) over the public and admin sockets.

Prints the error rate (designed 503s counted apart), p50/p99 latency per kind, and the
server's RSS, open fds and threads at start and end. Run with `make soak` (10 minutes) or
`python -m bench.soak.soak --duration 60` for a short proof.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.proving.stack import Stack, make_stack, open_fds, rss_kib, threads  # noqa: E402
from tests.support.process import short_tmp_dir  # noqa: E402

# Share of each kind of request in the mix (pushes go to the admin socket).
MIX = [("health", 0.35), ("secret", 0.35), ("scry", 0.25), ("push", 0.05)]
QUERIES = ["retry policy", "open_pool", "exponential backoff", "connection pool size"]
SECRETS = {f"SOAK_{i}": f"soak-value-{i:04d}-" + "x" * 24 for i in range(20)}


def snapshot(pid: int) -> dict[str, int]:
    return {"rss_kib": rss_kib(pid), "fds": open_fds(pid), "threads": threads(pid)}


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: Counter[tuple[str, int | str]] = Counter()

    def add(self, kind: str, status: int | str, seconds: float) -> None:
        with self.lock:
            self.status[(kind, status)] += 1
            if status == 200:
                self.latency[kind].append(seconds)


def client_loop(stack: Stack, tally: Tally, stop: threading.Event, hz: float, seed: int) -> None:
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    period = 1.0 / hz
    with stack.uds(timeout=30) as public, stack.admin(timeout=30) as admin:
        next_at = time.monotonic() + rng.random() * period
        while not stop.is_set():
            kind = rng.choices(kinds, weights)[0]
            started = time.perf_counter()
            try:
                if kind == "health":
                    status = public.get("/health").status_code
                elif kind == "secret":
                    status = public.get(f"/secrets/{rng.choice(list(SECRETS))}").status_code
                elif kind == "scry":
                    body = {"query": rng.choice(QUERIES), "limit": 5}
                    status = public.post("/api/scry", json=body).status_code
                else:
                    status = admin.put("/admin/secrets", json={"secrets": SECRETS}).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            tally.add(kind, status, time.perf_counter() - started)
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--hz", type=float, default=10.0, help="requests per second per client")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    args = parser.parse_args()

    home = short_tmp_dir("soak")
    stack = make_stack(home, knowledge=True)
    try:
        stack.service.start(timeout=180)
        stack.push(SECRETS)
        with stack.uds(timeout=60) as warm:  # load the model before the baseline
            warm.post("/api/scry", json={"query": "warm up"})
        start = snapshot(stack.pid)
        tally, stop = Tally(), threading.Event()
        workers = [
            threading.Thread(target=client_loop, args=(stack, tally, stop, args.hz, i))
            for i in range(args.clients)
        ]
        began = time.monotonic()
        for worker in workers:
            worker.start()
        samples = [start]
        while time.monotonic() - began < args.duration:
            time.sleep(min(10.0, args.duration / 6))
            samples.append(snapshot(stack.pid))
        stop.set()
        for worker in workers:
            worker.join(60)
        elapsed = time.monotonic() - began
        time.sleep(2)  # let connections close before the last look
        end = snapshot(stack.pid)
        alive = stack.service.proc is not None and stack.service.proc.poll() is None
        report(args, tally, start, end, samples, elapsed, alive)
    finally:
        stack.service.kill()
        shutil.rmtree(home, ignore_errors=True)


def report(
    args: argparse.Namespace,
    tally: Tally,
    start: dict[str, int],
    end: dict[str, int],
    samples: list[dict[str, int]],
    elapsed: float,
    alive: bool,
) -> None:
    total = sum(tally.status.values())
    designed = sum(n for (_, s), n in tally.status.items() if s == 503)
    errors = sum(n for (_, s), n in tally.status.items() if s not in (200, 503))
    print(
        f"soak: {args.clients} clients x {args.hz} Hz for {elapsed:.0f} s, "
        f"{total} requests ({total / elapsed:.0f}/s), service alive: {alive}"
    )
    print(f"errors (not 200, not designed 503): {errors} ({100 * errors / max(total, 1):.3f}%)")
    print(f"designed 503 (gate full): {designed} ({100 * designed / max(total, 1):.2f}%)")
    print("| kind | requests | 200 | other | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for kind, _ in MIX:
        counts = {s: n for (k, s), n in tally.status.items() if k == kind}
        ok = counts.get(200, 0)
        other = ", ".join(f"{s}: {n}" for s, n in sorted(counts.items(), key=str) if s != 200)
        lat = tally.latency[kind]
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        print(
            f"| {kind} | {sum(counts.values())} | {ok} | {other or '-'} | {p50:.1f} | "
            f"{percentile(lat, 0.99) * 1000:.1f} |"
        )
    print("| server | start | end | change |")
    print("|---|---|---|---|")
    for key in ("rss_kib", "fds", "threads"):
        change = end[key] - start[key]
        pct = f" ({100 * change / start[key]:+.1f}%)" if start[key] else ""
        print(f"| {key} | {start[key]} | {end[key]} | {change:+d}{pct} |")
    print(
        "samples (rss_kib, fds, threads): "
        + " ".join(f"{s['rss_kib']}/{s['fds']}/{s['threads']}" for s in samples)
    )


if __name__ == "__main__":
    main()
