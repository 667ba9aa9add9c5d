"""secrets_run's commands and the server's stop: a stop kills every command it can see,
including one caught between its start and its registration, and nothing starts after it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest

from service.mcp import run_tool
from service.mcp.backend import ToolError
from service.redaction.scrubber import Scrubber

SCRUBBER = Scrubber({b"<tripwire>": b"tripwire-run-tool-5d1e"})


def _run(argv: list[str], timeout: float) -> Any:
    return run_tool._run(argv, dict(os.environ), SCRUBBER, cwd=None, timeout=timeout, cap=1024)


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # stop_all ends the process's commands for good: each test gets its own state.
    monkeypatch.setattr(run_tool, "_stopping", False)
    monkeypatch.setattr(run_tool, "_running", set())


@pytest.mark.usefixtures("fresh_state")
def test_a_stop_during_a_commands_start_kills_that_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_start = run_tool.start_piped
    stoppers: list[threading.Thread] = []

    def start_then_stop(*args: Any, **kwargs: Any) -> tuple[subprocess.Popen[bytes], int, int]:
        started = real_start(*args, **kwargs)
        # The stop signal lands after the command started and before it was registered;
        # the pause gives the stopping thread every chance to run first.
        stopper = threading.Thread(target=run_tool.stop_all)
        stopper.start()
        stoppers.append(stopper)
        time.sleep(0.2)
        return started

    monkeypatch.setattr(run_tool, "start_piped", start_then_stop)
    began = time.monotonic()
    outcome = _run(["sh", "-c", "exec sleep 60"], timeout=20)
    for stopper in stoppers:
        stopper.join(timeout=10)
    assert not outcome.timed_out, "the stop missed the command; only the timeout ended it"
    assert outcome.exit_code == 128 + signal.SIGKILL
    assert time.monotonic() - began < 15


@pytest.mark.usefixtures("fresh_state")
def test_no_command_starts_after_the_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[object] = []
    monkeypatch.setattr(run_tool, "start_piped", lambda *a, **k: starts.append(a))
    run_tool.stop_all()
    with pytest.raises(ToolError, match="stopping: the command was not started"):
        _run(["true"], timeout=5)
    assert starts == []


@pytest.mark.usefixtures("fresh_state")
def test_a_command_that_ends_by_itself_is_forgotten() -> None:
    outcome = _run(["sh", "-c", "echo tripwire-run-tool-5d1e; exit 3"], timeout=20)
    assert outcome.exit_code == 3
    assert outcome.stdout.kept() == b"<tripwire>\n"
    assert run_tool._running == set()
