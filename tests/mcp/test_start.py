"""What `patina mcp` loads before it can answer: an agent spawns it for every session, so
the SDK's clients and high-level framework, httpx's command-line tool (rich, pygments) and
the other commands' modules stay out of its process. Checked by the modules a fresh process
holds after it answered `initialize` (not by time: the timing is bench/mcp/round_trip.py's)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.mcp.lean_start import skip_unused_imports
from tests.mcp.helpers import initialize_over_pipes
from tests.support.process import short_tmp_dir

# Runs `patina mcp` exactly as the console script does, then writes the modules it loaded.
ENTRY = """
import atexit, json, sys
record_to = sys.argv[1]
def record():
    loaded = sorted(name for name, module in sys.modules.items() if module is not None)
    with open(record_to, "w") as out:
        json.dump(loaded, out)
atexit.register(record)
sys.argv = ["patina", "mcp"]
from service.cli.main import main
main()
"""

# What the process must not pay for (a package and everything under it).
LEFT_OUT = (
    "mcp.client",  # the SDK's clients, with their own HTTP stack
    "mcp.server.mcpserver",  # the SDK's high-level server framework
    "httpx2",
    "httpx._main",  # httpx's CLI, which brings rich and pygments
    "rich",
    "pygments",
    "cryptography",
    "numpy",  # the other commands' modules: knowledge, the vault
    "onnxruntime",
    "service.knowledge.embedder",
    "service.secrets.store",
    "pyrage",
    "fastapi",  # the service itself
    "service.app",
)
# What it serves with: proof that the process got as far as answering.
SERVES_WITH = (
    "service.mcp.stdio",
    "service.mcp.remote",
    "mcp.server.lowlevel.server",
    "mcp.server.stdio",
    "httpx",
)


def _modules_of_a_started_server(tmp: Path) -> set[str]:
    record = tmp / "modules.json"
    env = {"PATINA_HOME": str(tmp / "home"), "PATH": "/usr/bin:/bin"}
    with subprocess.Popen(
        [sys.executable, "-c", ENTRY, str(record)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        initialize_over_pipes(proc)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode(errors="replace")
    loaded: list[str] = json.loads(record.read_text())
    return set(loaded)


@pytest.fixture(scope="module")
def loaded() -> Iterator[set[str]]:
    tmp = short_tmp_dir("mcpstart")
    try:
        yield _modules_of_a_started_server(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("package", LEFT_OUT)
def test_patina_mcp_answers_without_loading(loaded: set[str], package: str) -> None:
    found = sorted(name for name in loaded if name == package or name.startswith(package + "."))
    assert not found, f"`patina mcp` loaded {found}"


@pytest.mark.parametrize("module", SERVES_WITH)
def test_patina_mcp_answers_with(loaded: set[str], module: str) -> None:
    assert module in loaded


def test_skipping_changes_nothing_once_the_sdk_and_httpx_are_imported() -> None:
    # This process imported both fully (the tests' own SDK client and httpx): they stay whole.
    import httpx
    import mcp

    skip_unused_imports()
    assert sys.modules["mcp"] is mcp
    assert sys.modules["httpx"] is httpx
    assert sys.modules["httpx._main"] is not None
    from mcp import ClientSession
    from mcp.server import Server

    assert ClientSession.__name__ == "ClientSession"
    assert Server.__name__ == "Server"
