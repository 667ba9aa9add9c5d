"""Masked input: `patina secrets add NAME` on a terminal asks twice without echoing what is
typed, and the value then decrypts from the vault (it was read, not dropped)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import PATINA, run_patina, short_tmp_dir

TYPED = "tripwire-typed-61f0aa-DO-NOT-ECHO"


@pytest.fixture
def home() -> Iterator[Path]:
    path = short_tmp_dir("mk")
    assert run_patina("secrets", "init", env={"PATINA_HOME": str(path)}).returncode == 0
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _read_until(fd: int, needle: bytes, seen: bytearray, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                return


def _take_terminal() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_prompted_value_is_not_echoed_and_is_stored(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    env["PATINA_HOME"] = str(home)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [PATINA, "secrets", "add", "TYPED_SECRET"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
        # getpass reads the controlling terminal: make the pty the child's.
        preexec_fn=_take_terminal,
    )
    os.close(secondary)
    seen = bytearray()
    try:
        _read_until(primary, b"Value: ", seen)
        os.write(primary, TYPED.encode() + b"\n")
        _read_until(primary, b"confirmation: ", seen)
        os.write(primary, TYPED.encode() + b"\n")
        _read_until(primary, b"TYPED_SECRET", seen)
        assert proc.wait(30) == 0, seen.decode(errors="replace")
        _read_until(primary, b"\x00", seen, timeout=0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    transcript = seen.decode(errors="replace")
    assert "Value" in transcript, transcript
    assert "added TYPED_SECRET" in transcript, transcript
    assert TYPED not in transcript
    listed = run_patina("secrets", "list", env={"PATINA_HOME": str(home)})
    assert listed.stdout.decode().split() == ["TYPED_SECRET"]
    assert TYPED.encode() not in (home / "secrets" / "vault.age").read_bytes()
