"""Pre-handshake flood: N silent TCP connections to the TLS port of a real `patina serve`
run under a small file-descriptor limit, against /health on its Unix socket.

Prints how many connections the service held and how many it closed at accept, how long a
held silent connection lived (the TLS handshake timeout), and /health latency on the
public Unix socket before and during the flood, side by side. Run:

    python bench/flood/flood_bench.py [--connections 1000] [--nofile 1024] [--requests 300]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.proving.stack import Stack, make_stack, stable_held  # noqa: E402
from tests.support.flood import closed_by_server, open_silent  # noqa: E402
from tests.support.process import short_tmp_dir  # noqa: E402


def health_latencies(stack: Stack, count: int) -> tuple[list[float], int]:
    """Seconds per /health on a fresh UDS connection each time (as a CLI or probe does),
    and how many did not answer 200."""
    out, failed = [], 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            with stack.uds(timeout=10) as client:
                ok = client.get("/health").status_code == 200
        except Exception:
            ok = False
        out.append(time.perf_counter() - started)
        failed += not ok
    return out, failed


def watch_closures(socks: list[socket.socket], until: float, since: float) -> list[float]:
    """When (seconds after `since`, a monotonic time) each socket was closed by the
    server, polling for `until` seconds or until all are closed."""
    started = time.monotonic()
    when: dict[int, float] = {}
    while len(when) < len(socks) and time.monotonic() - started < until:
        for i, sock in enumerate(socks):
            if i not in when and closed_by_server(sock):
                when[i] = time.monotonic() - since
        time.sleep(0.01)
    return sorted(when.values())


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


def run(args: argparse.Namespace, *, handshake_secs: float | None) -> dict[str, Any]:
    """One service under the fd limit, one flood; the figures of that run."""
    env = (
        {} if handshake_secs is None else {"PATINA_TLS_HANDSHAKE_TIMEOUT_SECS": str(handshake_secs)}
    )
    home = short_tmp_dir("fb")
    stack = make_stack(home, env=env)
    prlimit = shutil.which("prlimit")
    assert prlimit, "prlimit (util-linux) is needed"
    stack.service.prefix = [prlimit, f"--nofile={args.nofile}:{args.nofile}"]
    out: dict[str, Any] = {}
    try:
        stack.service.start(timeout=60)
        out["cap_line"] = [ln for ln in stack.service.log().splitlines() if "capped at" in ln]
        health_latencies(stack, 20)  # warm-up
        baseline = stable_held(stack.pid)
        if handshake_secs is not None:
            out["quiet"] = health_latencies(stack, args.requests)
        started = time.monotonic()
        socks = open_silent(stack.port, args.connections)
        # The service answers the flood at once: what is over its cap is closed.
        out["early"] = watch_closures(socks, until=2.0, since=started)
        held = stable_held(stack.pid, quiet=0.2)
        out["held"] = held.fd_count - baseline.fd_count
        if handshake_secs is not None:
            out["flooded"] = health_latencies(stack, args.requests)
            out["flood_seconds"] = time.monotonic() - started
            out["still_held"] = stable_held(stack.pid, quiet=0.2).fd_count - baseline.fd_count
        else:
            held_socks = [s for s in socks if not closed_by_server(s)]
            out["rest"] = watch_closures(held_socks, until=30.0, since=started)
        for sock in socks:
            sock.close()
    finally:
        stack.service.kill()
        shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 1024), hard))

    # Run 1: handshake timeout at its maximum (60 s), so the flood is held throughout the
    # measurement; run 2: the default (5 s), to see how long a silent connection lives.
    sustained = run(args, handshake_secs=60.0)
    dropped = run(args, handshake_secs=None)
    quiet, quiet_failed = sustained["quiet"]
    flooded, flood_failed = sustained["flooded"]
    early, held, cap_line = sustained["early"], sustained["held"], sustained["cap_line"]
    flood_seconds, still_held = sustained["flood_seconds"], sustained["still_held"]
    rest = dropped["rest"]

    print(f"flood: {args.connections} silent TCP connections, service RLIMIT_NOFILE {args.nofile}")
    print(f"  {cap_line[0].split(' patina.transport ')[-1] if cap_line else 'no cap applied'}")
    print(f"  closed within 2 s of connecting (over the cap): {len(early)}")
    print(f"  held by the service: {held} descriptors above idle ({still_held} after the run)")
    if rest:
        print(
            f"  with the default TLS handshake timeout (5 s), the {len(rest)} held ones were "
            f"dropped {rest[0]:.1f}-{rest[-1]:.1f} s after connecting"
        )
    print("/health over the public Unix socket (new connection per request):")
    print(f"  {'':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'failed':>7}")
    for label, values, failed in (
        ("quiet", quiet, quiet_failed),
        ("flooded", flooded, flood_failed),
    ):
        print(
            f"  {label:>10} {ms(values, 50):8.2f} {ms(values, 99):8.2f} "
            f"{max(values) * 1000:8.2f} {failed:7d}"
        )
    print(
        f"  ratio flooded/quiet p50: {ms(flooded, 50) / max(ms(quiet, 50), 1e-9):.2f}x "
        f"(flood phase lasted {flood_seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
