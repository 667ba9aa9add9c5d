"""Service-core benchmark: the real service against a bare uvicorn app, over UDS and TLS.

    .venv/bin/python bench/core/http_bench.py --seconds 10

Starts, as separate processes and on sockets of the same kind, the real `patina serve`
(public UDS + TLS TCP with dev certificates), a raw-ASGI hello world and an empty FastAPI app
under plain uvicorn (uvloop + httptools, like the service), and a canned-response server that
measures the load generator's own ceiling. This process is the load generator: a pool of
keep-alive HTTP/1.1 connections written on raw asyncio protocols (one request in flight per
connection, closed loop). On a machine with 2+ cores the servers are pinned to CPU 0 and the
load generator to CPU 1 so they do not starve each other; CPU use of both is reported.

For `/health` and authenticated routes (`/secrets`, the names list; `/secrets/BENCH_TOKEN`, a
secret read, the service holding one secret pushed over its admin socket at start; and
`/metrics`; the caller is its uid over UDS and a bearer token over TLS), at 1 and 4 client
connections, it prints requests/s, p50 and p99 latency and server CPU time per request for
every target side by side, and the service's figures as ratios of the bare app's and of the
empty FastAPI app's, measured in interleaved rounds in one run. The bare apps answer every
path with the same hello world.

Targets (at the most connections measured): an authenticated route over the Unix socket at
>= 0.5x the requests/s of the empty FastAPI app, and p99 <= 1 ms.
Everything binds to loopback or to Unix sockets in a private temp dir, and every process
and file it created is gone when it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import uvloop

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0
TICKS = os.sysconf("SC_CLK_TCK")

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
UDS_P99_TARGET_MS = 1.0
FASTAPI_RATIO_TARGET = 0.5
BENCH_SECRET = ("BENCH_TOKEN", "bench-secret-value-0123456789")


# -- load generator ---------------------------------------------------------------------------


@dataclass
class Run:
    """What one measurement collected (latencies in ns, recorded only while `recording`)."""

    recording: bool = False
    stopping: bool = False
    latencies: list[int] = field(default_factory=list)
    errors: int = 0
    bad_status: bytes = b""


class ClientConn(asyncio.Protocol):
    """A keep-alive connection that sends the next request as soon as a response ends."""

    def __init__(self, request: bytes, run: Run, done: asyncio.Future[None]) -> None:
        self.request = request
        self.run = run
        self.done = done
        self.buf = b""
        self.need = -1  # bytes of the current response; -1 until its head is parsed
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        self.sent = time.perf_counter_ns()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head = buf[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self._fail("response without content-length")
                return
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop > 0 else None])
            self.need = end + 4 + length
            if head[9:12] != b"200":
                self.run.errors += 1
                self.run.bad_status = head[:40]
        if len(buf) < self.need:
            self.buf = buf
            return
        now = time.perf_counter_ns()
        run = self.run
        if run.recording:
            run.latencies.append(now - self.sent)
        self.buf = buf[self.need :]
        self.need = -1
        if self.buf:
            self._fail("bytes after the response (the server answered twice?)")
        elif run.stopping:
            self.transport.close()
        else:
            self._send()

    def _fail(self, why: str) -> None:
        self.run.errors += 1
        self.transport.close()
        if not self.done.done():
            self.done.set_exception(RuntimeError(why))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if self.run.stopping:
                self.done.set_result(None)
            else:
                self.done.set_exception(RuntimeError(f"connection lost mid-run: {exc}"))


@dataclass(frozen=True)
class Target:
    """Where to send requests: a Unix socket path, or a TLS port on 127.0.0.1."""

    uds: str | None = None
    port: int = 0
    ssl: ssl.SSLContext | None = None


def build_request(path: str, *, token: str | None) -> bytes:
    head = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: patina-bench\r\n"
    if token is not None:
        head += f"Authorization: Bearer {token}\r\n"
    return (head + "\r\n").encode()


async def drive(
    target: Target, request: bytes, *, connections: int, warmup: float, seconds: float
) -> tuple[Run, float, float]:
    """Closed-loop load for warmup+seconds; returns the run, the wall time and CPU time of
    this process while recording."""
    loop = asyncio.get_running_loop()
    run = Run()
    dones: list[asyncio.Future[None]] = []
    transports: list[asyncio.BaseTransport] = []
    tr: asyncio.BaseTransport
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        dones.append(done)

        def factory(done: asyncio.Future[None] = done) -> ClientConn:
            return ClientConn(request, run, done)

        if target.uds is not None:
            tr, _ = await loop.create_unix_connection(factory, target.uds)
        else:
            tr, _ = await loop.create_connection(
                factory, "127.0.0.1", target.port, ssl=target.ssl, server_hostname="localhost"
            )
        transports.append(tr)
    await _sleep_or_fail(warmup, dones)
    run.recording = True
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await _sleep_or_fail(seconds, dones)
    run.recording = False
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    run.stopping = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*dones, return_exceptions=True), 5.0)
    for tr in transports:
        tr.close()
    return run, wall, cpu


async def _sleep_or_fail(seconds: float, dones: list[asyncio.Future[None]]) -> None:
    finished, _ = await asyncio.wait(dones, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for fut in finished:
        fut.result()  # a connection failed: stop the benchmark with its reason


# -- servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    uds: str | None = None
    port: int = 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(servers' CPUs, load generator's CPUs), or (None, None) with too few to split."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def spawn(
    argv: list[str], *, log: Path, env: dict[str, str], cpus: set[int] | None
) -> subprocess.Popen[bytes]:
    out = log.open("wb")

    def pin() -> None:
        # The child must not inherit the start-up phase's blocked signals.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        start_new_session=True,
        preexec_fn=pin,  # safe here: this process has started no threads
    )
    out.close()
    return proc


def stop_all(servers: list[Server]) -> None:
    for srv in servers:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGTERM)
    for srv in servers:
        try:
            srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()


def wait_ready(srv: Server, client_ssl: ssl.SSLContext) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"{srv.name} exited at start:\n{srv.log.read_text()[-2000:]}")
        try:
            if srv.uds is not None:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(2)
                    s.connect(srv.uds)
                    s.sendall(build_request("/health", token=None))
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            else:
                with (
                    socket.create_connection(("127.0.0.1", srv.port), 2) as raw,
                    client_ssl.wrap_socket(raw, server_hostname="localhost") as s,
                ):
                    s.sendall(build_request("/health", token=None))
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{srv.name} did not answer within {START_TIMEOUT:.0f}s")


def push_secret(admin_socket: Path) -> None:
    """Give the service one secret to read, as the sidecar would."""
    name, value = BENCH_SECRET
    body = f'{{"secrets":{{"{name}":"{value}"}}}}'.encode()
    head = "PUT /admin/secrets HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(admin_socket))
        s.sendall(head.encode() + body)
        answer = s.recv(64)
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"pushing the benchmark's secret failed: {answer!r}")


@dataclass
class Fleet:
    """Every server process of one benchmark run, by role and transport."""

    servers: dict[tuple[str, str], Server]
    token: str
    client_ssl: ssl.SSLContext


def start_fleet(tmp: Path, cpus: set[int] | None, started: list[Server]) -> Fleet:
    certs, home = tmp / "certs", tmp / "home"
    subprocess.run(
        [str(BIN / "patina"), "tls", "dev-certs", str(certs)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cert, key = str(certs / "server.pem"), str(certs / "server-key.pem")
    client_ssl = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    # The service reads PATINA_* settings and /run/secrets: start it from a clean slate.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    env["PATINA_HOME"] = str(home)
    # The generated token (the TLS caller) may read the benchmark's secret too.
    consumers = tmp / "consumers.toml"
    consumers.write_text(f'[[consumers]]\ntoken = "generated"\nallow = ["{BENCH_SECRET[0]}"]\n')
    env["PATINA_SECRETS__CONSUMERS_FILE"] = str(consumers)
    servers: dict[tuple[str, str], Server] = {}

    def add(
        role: str, transport: str, argv: list[str], *, uds: str | None = None, port: int = 0
    ) -> None:
        log = tmp / f"{role}-{transport}.log"
        proc = spawn(argv, log=log, env=env, cpus=cpus)
        srv = Server(f"{role}/{transport}", proc, log, uds=uds, port=port)
        started.append(srv)
        servers[(role, transport)] = srv

    svc_port = free_port()
    svc = [str(BIN / "patina"), "serve", "--home", str(home), "--tcp", f"127.0.0.1:{svc_port}"]
    svc += ["--tls-cert", cert, "--tls-key", key]
    add("service", "uds", svc, uds=str(home / "run" / "serve.sock"))
    svc_uds = servers[("service", "uds")]
    servers[("service", "tls")] = Server("service/tls", svc_uds.proc, svc_uds.log, port=svc_port)

    for role, attr in (("bare", "app"), ("fastapi", "fastapi_app")):
        uv = [sys.executable, "-m", "uvicorn", f"bare_app:{attr}", "--app-dir", str(HERE)]
        uv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        uv += ["--log-level", "warning", "--lifespan", "off"]
        uds = str(tmp / f"{role}.sock")
        add(role, "uds", [*uv, "--uds", uds], uds=uds)
        port = free_port()
        tls = [*uv, "--host", "127.0.0.1", "--port", str(port)]
        add(role, "tls", [*tls, "--ssl-certfile", cert, "--ssl-keyfile", key], port=port)

    canned = [sys.executable, str(HERE / "canned_server.py")]
    uds = str(tmp / "canned.sock")
    add("canned", "uds", [*canned, "--uds", uds], uds=uds)
    port = free_port()
    add(
        "canned",
        "tls",
        [*canned, "--tcp", str(port), "--tls-cert", cert, "--tls-key", key],
        port=port,
    )

    for srv in servers.values():
        wait_ready(srv, client_ssl)
    push_secret(home / "run" / "admin.sock")
    token = (home / "run" / "serve.token").read_text().strip()
    return Fleet(servers, token, client_ssl)


# -- measurement and report -------------------------------------------------------------------


@dataclass
class Result:
    requests: int = 0
    wall: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    errors: int = 0
    latencies: list[int] = field(default_factory=list)

    @property
    def cpu_per_request(self) -> float:
        return self.server_cpu / self.requests if self.requests else float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


ROLES = ("service", "bare", "fastapi")
LABEL = {
    "service": "patina serve",
    "bare": "bare uvicorn (ASGI)",
    "fastapi": "bare uvicorn+FastAPI",
    "canned": "canned (client ceiling)",
}


Key = tuple[str, str, int, str]  # transport, route, connections, role


async def measure(fleet: Fleet, args: argparse.Namespace) -> dict[Key, Result]:
    """Every row, in interleaved rounds so slow drifts of a shared machine hit all alike."""
    results: dict[Key, Result] = {}
    routes = [("/health", False)] + [(route, True) for route in args.auth_routes]
    plan: list[tuple[Key, bool]] = []
    for transport in ("uds", "tls"):
        for conns in args.connections:
            for route, auth in routes:
                for _ in range(args.rounds):
                    plan += [((transport, route, conns, role), auth) for role in ROLES]
            plan += [((transport, "(any)", conns, "canned"), False)] * args.rounds
    per = args.seconds / args.rounds
    for i, (key, auth) in enumerate(plan, 1):
        transport, route, conns, role = key
        srv = fleet.servers[(role, transport)]
        target = Target(
            uds=srv.uds, port=srv.port, ssl=fleet.client_ssl if transport == "tls" else None
        )
        token = fleet.token if (auth and transport == "tls") else None
        request = build_request(route if route != "(any)" else "/health", token=token)
        cpu0 = srv.cpu_seconds()
        run, wall, ccpu = await asyncio.wait_for(
            drive(target, request, connections=conns, warmup=args.warmup, seconds=per),
            timeout=args.warmup + per + 30,
        )
        scpu = srv.cpu_seconds() - cpu0
        res = results.setdefault(key, Result())
        res.requests += len(run.latencies)
        res.wall += wall
        res.client_cpu += ccpu
        # The server's CPU time includes the warm-up: keep the recorded share.
        res.server_cpu += scpu * wall / (wall + args.warmup)
        res.errors += run.errors
        res.latencies += run.latencies
        if run.errors:
            print(f"  ! {role} {transport} {route}: {run.errors} errors, e.g. {run.bad_status!r}")
        print(
            f"  [{i:2}/{len(plan)}] {transport} {route:9} c={conns:<3} {LABEL[role]:24} "
            f"{len(run.latencies) / wall:8.0f} req/s",
            flush=True,
        )
    return results


async def measure_until_signal(fleet: Fleet, args: argparse.Namespace) -> dict[Key, Result]:
    """`measure`, stopped cleanly by SIGTERM or SIGINT (the loop owns signals meanwhile)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await measure(fleet, args)
    except asyncio.CancelledError:
        raise SystemExit("interrupted") from None


def report(results: dict[Key, Result], args: argparse.Namespace) -> bool:
    """Print the table and the verdicts; True when every target is met."""
    lines = [
        "c = keep-alive client connections, one request in flight on each; "
        f"{args.seconds:g}s measured per row in {args.rounds} interleaved rounds, "
        f"{args.warmup:g}s warm-up before each round.",
        "CPU = share of one core used by the server / by the load generator while measured;",
        "us/req = server CPU time per request (robust to other load on the machine);",
        "x bare = req/s relative to the bare ASGI app; x cpu = bare us/req / this us/req.",
        "",
        f"{'transport':9} {'route':20} {'c':>3} {'server':24} {'req/s':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'srv CPU':>7} {'cli CPU':>7} {'us/req':>6} {'x bare':>6} {'x cpu':>6}",
    ]
    verdicts: list[tuple[str, bool]] = []
    most = max(args.connections)
    for (transport, route, conns, role), res in results.items():
        bare = results.get((transport, route, conns, "bare"))
        fastapi = results.get((transport, route, conns, "fastapi"))
        ratio = cpu_ratio = ""
        if bare and role != "canned" and res.requests:
            ratio = f"{res.rps / bare.rps:5.2f}x"
            cpu_ratio = f"{bare.cpu_per_request / res.cpu_per_request:5.2f}x"
        lines.append(
            f"{transport:9} {route:20} {conns:3} {LABEL[role]:24} {res.rps:7.0f} "
            f"{res.pct(0.5):7.3f} {res.pct(0.99):7.3f} {res.server_cpu / res.wall:7.0%} "
            f"{res.client_cpu / res.wall:7.0%} {res.cpu_per_request * 1e6:6.0f} "
            f"{ratio:>6} {cpu_ratio:>6}" + (f"  ({res.errors} errors)" if res.errors else "")
        )
        # The targets are the secrets routes': /metrics renders the whole registry (~1 ms).
        if role == "service" and transport == "uds" and conns == most and route != "/health":
            if not route.startswith("/secrets"):
                continue
            where = f"{transport} {route} c={conns}"
            if fastapi and fastapi.rps:
                ok = res.rps >= FASTAPI_RATIO_TARGET * fastapi.rps
                verdicts.append((f"{where}: req/s {res.rps / fastapi.rps:.2f}x FastAPI", ok))
            p99 = res.pct(0.99)
            verdicts.append((f"{where}: p99 {p99:.3f} ms", p99 <= UDS_P99_TARGET_MS))
    lines += [
        "",
        f"targets (authenticated secrets routes over UDS at c={most}): >= {FASTAPI_RATIO_TARGET}x "
        f"the empty FastAPI app's req/s; p99 <= {UDS_P99_TARGET_MS} ms",
    ]
    lines += [f"  {'met    ' if ok else 'NOT MET'}  {what}" for what, ok in verdicts]
    # For reading the targets against the framework's own floor (not a verdict).
    lines += ["", "the service's req/s against the empty FastAPI app under the same uvicorn:"]
    for (transport, route, conns, role), res in results.items():
        fastapi = results.get((transport, route, conns, "fastapi"))
        if role == "service" and fastapi and fastapi.rps:
            lines.append(f"  {transport} {route} c={conns}: {res.rps / fastapi.rps:.2f}x")
    print("\n".join(lines))
    return all(ok for _, ok in verdicts)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per row")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per row")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up before each round")
    parser.add_argument(
        "--connections",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=[1, 4],
        help="comma-separated keep-alive connection counts, one set of rows each (default 1,4)",
    )
    parser.add_argument(
        "--auth-routes",
        type=lambda text: text.split(","),
        default=["/secrets", f"/secrets/{BENCH_SECRET[0]}", "/metrics"],
        help="comma-separated authenticated GET routes (default /secrets,/secrets/BENCH_TOKEN,"
        "/metrics)",
    )
    args = parser.parse_args()

    server_set, client_set = server_cpus()
    rows = 2 * len(args.connections) * ((1 + len(args.auth_routes)) * len(ROLES) + 1)
    total = rows * (args.seconds + args.rounds * args.warmup)
    print(
        f"service-core benchmark: {rows} rows, about {total:.0f}s; "
        + (
            f"servers on CPU {sorted(server_set)}, load generator on CPU {sorted(client_set)}"
            if server_set and client_set
            else "one CPU: servers and load generator share it"
        ),
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="pcb.", dir="/tmp"))  # short: UDS paths < 108 bytes
    started: list[Server] = []
    try:
        with sigterm_as_exit():
            # Signals wait until every server is started and tracked (start-up is bounded),
            # so an interruption cannot leave an untracked child behind.
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                fleet = start_fleet(tmp, server_set, started)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            if client_set:
                os.sched_setaffinity(0, client_set)
            results = uvloop.run(measure_until_signal(fleet, args))
            print()
            met = report(results, args)
    finally:
        stop_all(started)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
