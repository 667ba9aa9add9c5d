"""Start the real `patina serve` as a child process on temp sockets, and stop it.

Tests use this to exercise the service exactly as users run it: real sockets, real signals.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.client import CLIENT_LIMITS

PATINA = str(Path(sys.executable).with_name("patina"))


def short_tmp_dir(prefix: str = "pt") -> Path:
    """A temp dir under /tmp: Unix socket paths must stay under ~100 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def uds_client(path: Path, **kwargs: object) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(path), limits=CLIENT_LIMITS),
        base_url="http://patina.local",
        **kwargs,  # type: ignore[arg-type]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(path: Path) -> bool:
    """True when something listens on the socket (probed without leaking a socket)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@dataclass
class ServiceProcess:
    """A running `patina serve`; `home` holds run/ and data/, `log` its stderr."""

    home: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    # A command that execs `patina serve` in the same process, e.g. prlimit --nofile=N:N.
    prefix: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def socket(self) -> Path:
        return self.run_dir / "serve.sock"

    @property
    def admin_socket(self) -> Path:
        return self.run_dir / "admin.sock"

    @property
    def log_path(self) -> Path:
        return self.home / "serve.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """The log once it contains `text` (lines are written just after the response)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in the log after {timeout}s:\n{self.log()}")

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
        env.update(
            {
                "PATINA_HOME": str(self.home),
                # The model is slow to load; tests that need knowledge turn it on.
                "PATINA_KNOWLEDGE__ENABLED": "false",
            }
        )
        env.update(self.env)
        return env

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> ServiceProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.prefix, PATINA, "serve", *self.args],
            env=self.base_env(),
            stdout=log,
            stderr=log,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"patina serve exited {self.proc.returncode}:\n{self.log()}")
            if _accepts(self.socket):
                with contextlib.suppress(httpx.HTTPError), uds_client(self.socket) as c:
                    # Any HTTP answer will do: a test may be a refused peer on purpose.
                    c.get("/health", timeout=2)
                    if "listening" in self.log():
                        return
            time.sleep(0.05)
        raise AssertionError(f"patina serve not ready in {timeout}s:\n{self.log()}")

    def client(self, **kwargs: object) -> httpx.Client:
        return uds_client(self.socket, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"patina serve ignored {sig!r}:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running_service(
    args: list[str] | None = None, env: dict[str, str] | None = None, home: Path | None = None
) -> Iterator[ServiceProcess]:
    """A started service that is killed (if still running) and cleaned up afterwards."""
    base = home or short_tmp_dir()
    service = ServiceProcess(home=base, args=list(args or []), env=dict(env or {}))
    try:
        yield service.start()
    finally:
        service.kill()
        if home is None:
            shutil.rmtree(base, ignore_errors=True)


def run_patina(
    *args: str, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run a `patina` command to completion (stdout/stderr captured)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    full_env.update(env or {})
    return subprocess.run(
        [PATINA, *args],
        env=full_env,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
