"""Fixtures of the agent-safe secrets tests: a temp home with a vault of tripwire values,
and a runner for the real `patina` command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.process import PATINA

# Tripwires: values that must only ever reach the child process, never its output.
TRIPWIRE = "tw-7d1e0c5b9a3f-DO-NOT-LEAK"
TRIPWIRE_PEM = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
TRIPWIRE_SHORT_B64 = "tw+/slash=?&:x"
# The dump tools whose output the scrubber reads back (argv).
DUMPS = [
    ["xxd"],
    ["xxd", "-p"],
    ["xxd", "-g1", "-u"],
    ["xxd", "-g4"],
    ["xxd", "-c", "7"],
    ["xxd", "-i"],
    ["hexdump", "-C"],
    ["od", "-c"],
    ["od", "-An", "-c"],
    ["od", "-tx1"],
    ["od", "-An", "-tx1"],
]


def patina_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `patina` command: ours without PATINA_*, with a temp home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    env["PATINA_HOME"] = str(home)
    env.update(extra)
    return env


def patina(
    home: Path,
    *args: str,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """Run `patina ARGS` to completion with its stdout and stderr captured."""
    return subprocess.run(
        [PATINA, *args],
        env=env or patina_env(home),
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def add_secret(home: Path, name: str, value: str) -> None:
    result = patina(home, "secrets", "add", name, "--stdin", input=value.encode())
    assert result.returncode == 0, result.stderr.decode()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose vault holds the tripwires as API_TOKEN, PEM_KEY and ODD_CHARS."""
    home = tmp_path / "home"
    result = patina(home, "secrets", "init")
    assert result.returncode == 0, result.stderr.decode()
    add_secret(home, "API_TOKEN", TRIPWIRE)
    add_secret(home, "PEM_KEY", TRIPWIRE_PEM)
    add_secret(home, "ODD_CHARS", TRIPWIRE_SHORT_B64)
    return home
