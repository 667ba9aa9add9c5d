"""A fully configured `patina serve` for the proving-ground tests: public and admin sockets,
TLS TCP with a token, a consumers file, optionally the knowledge index over a small project,
and helpers to push secrets and to measure the process (fds, threads, RSS) from /proc."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.client import ssl_context
from service.devcerts import DevCertFiles, write_dev_certs
from tests.support.process import ServiceProcess, free_port, uds_client

TCP_TOKEN = "pt_proving-token-5b1e90c4"
CONSUMERS = """
[[consumers]]
token = "env"
scopes = ["read", "list", "cache"]
allow = ["*"]
"""
PROJECT_FILES = {
    "README.md": "# Demo\n\nThe proving ground indexes this project and searches it.\n",
    "docs/retry.md": "## Retry policy\n\nRequests are retried with exponential backoff.\n",
    "src/pool.py": "def open_pool(size: int) -> list[int]:\n    return list(range(size))\n",
}


@dataclass
class Stack:
    """A service with every listener on, plus what a client needs to reach each one."""

    service: ServiceProcess
    certs: DevCertFiles
    port: int

    @property
    def pid(self) -> int:
        assert self.service.proc is not None
        return self.service.proc.pid

    def uds(self, **kwargs: object) -> httpx.Client:
        return uds_client(self.service.socket, **kwargs)

    def admin(self, **kwargs: object) -> httpx.Client:
        return uds_client(self.service.admin_socket, **kwargs)

    def tls(self, *, token: str | None = TCP_TOKEN, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=f"https://localhost:{self.port}",
            verify=ssl_context(self.certs.ca, None, None),
            headers=headers,
            timeout=timeout,
        )

    def push(self, secrets: dict[str, str]) -> None:
        with self.admin() as admin:
            response = admin.put("/admin/secrets", json={"secrets": secrets})
            assert response.status_code == 200, response.text


def make_stack(
    home: Path,
    *,
    knowledge: bool = False,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Stack:
    """Configure (not start) a service under `home` with TLS, a token and consumers."""
    certs = write_dev_certs(home / "certs")
    consumers = home / "consumers.toml"
    consumers.write_text(CONSUMERS)
    port = free_port()
    full_env = {
        "PATINA_SERVE_TOKEN": TCP_TOKEN,
        "PATINA_SECRETS__CONSUMERS_FILE": str(consumers),
        "PATINA_SECRETS__DISABLE_CORE_DUMPS": "false",
    }
    if knowledge:
        project = home / "project"
        for name, text in PROJECT_FILES.items():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            (project / name).write_text(text)
        full_env["PATINA_KNOWLEDGE__ENABLED"] = "true"
        full_env["PATINA_KNOWLEDGE__ROOTS"] = f'["{project}"]'
    full_env.update(env or {})
    args = [
        "--tcp",
        f"127.0.0.1:{port}",
        "--tls-cert",
        str(certs.server),
        "--tls-key",
        str(certs.server_key),
        *(extra_args or []),
    ]
    return Stack(ServiceProcess(home=home, args=args, env=full_env), certs, port)


def index_project(stack: Stack) -> None:
    """Index the configured roots and wait for the run to finish."""
    with stack.uds(timeout=120) as client:
        response = client.post("/api/index", json={"wait": True})
        assert response.status_code == 200, response.text


def accepts(path: Path) -> bool:
    """True when something accepts connections on the Unix socket (probe closed at once)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


# -- what the process holds, read from /proc ----------------------------------------------
def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> list[str]:
    """What each open fd points at (files, sockets, pipes), read in one pass: an fd closed
    between the listing and its readlink is simply not there."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return sorted(out)


def proc_status(pid: int, field: str) -> int:
    """An integer field of /proc/<pid>/status (Threads, VmRSS in kB, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def threads(pid: int) -> int:
    return proc_status(pid, "Threads")


def rss_kib(pid: int) -> int:
    return proc_status(pid, "VmRSS")


@dataclass(frozen=True)
class Held:
    """What a process holds at one moment: its fds (their targets) and its thread count.
    The fd count is the length of the same list, so a count and the list that explains it
    can never disagree."""

    fds: tuple[str, ...]
    threads: int

    @property
    def fd_count(self) -> int:
        return len(self.fds)

    def within(self, limit: Held) -> bool:
        return self.fd_count <= limit.fd_count and self.threads <= limit.threads

    def new_since(self, before: Held) -> list[str]:
        """The fd targets held now and not before (a multiset difference)."""
        return sorted((Counter(self.fds) - Counter(before.fds)).elements())


def held(pid: int) -> Held:
    return Held(tuple(fd_targets(pid)), threads(pid))


def stable_held(
    pid: int, *, limit: Held | None = None, quiet: float = 0.3, timeout: float = 30.0
) -> Held:
    """Wait until what the process holds stops changing for `quiet` seconds (and, given
    `limit`, is within it), then answer that snapshot; after `timeout`, the last one.

    A leak check compares two such snapshots: one read of /proc mid-change (a connection
    being closed, a worker thread exiting) could count an fd the next read no longer has."""
    deadline = time.monotonic() + timeout
    last = held(pid)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = held(pid)
        if now != last:
            last, since = now, time.monotonic()
            continue
        if time.monotonic() - since >= quiet and (limit is None or now.within(limit)):
            return now
    return last


# -- /health on both sockets while a test runs -------------------------------------------
@dataclass
class HealthWatch:
    """Polls /health on the public socket and on the admin socket, counting answers by
    status (or by the name of the error when there was no answer)."""

    stack: Stack
    public: Counter[int | str] = field(default_factory=Counter)
    admin: Counter[int | str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def answered(self) -> int:
        """Polls made so far, whatever their outcome."""
        return sum(self.public.values()) + sum(self.admin.values())

    def run(self) -> None:
        while not self.stop.is_set():
            for counter, connect in ((self.public, self.stack.uds), (self.admin, self.stack.admin)):
                try:
                    with connect(timeout=10) as client:
                        counter[client.get("/health").status_code] += 1
                except httpx.HTTPError as exc:
                    counter[type(exc).__name__] += 1
            time.sleep(0.05)


@contextlib.contextmanager
def health_watch(stack: Stack) -> Iterator[HealthWatch]:
    watch = HealthWatch(stack)
    thread = threading.Thread(target=watch.run)
    thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join(60)
