"""secrets_run: the agent's command, run by `patina mcp` (beside the agent, as its user)
with secrets injected, its output scrubbed by the same Scrubber as `patina secrets run`,
cut at an output cap and stopped at a timeout.

This prevents accidental disclosure only: the command is the agent's, and a command that
prints a value transformed (reversed, encrypted) or sends it elsewhere gets it out. That
is why the tool is off unless `mcp.secrets_run` is on (docs/agents.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field

import httpx

from service.agent.run import (
    RunError,
    ServiceSource,
    ServiceUnreachable,
    exit_status,
    plan_command,
    start_piped,
)
from service.mcp.backend import RunOutcome, ToolError
from service.mcp.catalogue import RunArgs
from service.mcp.config import McpSettings
from service.redaction.pump import pump
from service.redaction.scrubber import Scrubber

_READ = 1 << 16
# The commands running now (process group ids), stopped with the server (stop_all), and
# whether the server is stopping (then no command starts any more).
_running: set[int] = set()
_stopping = False
_running_lock = threading.Lock()


def stop_all() -> None:
    """Kill every command secrets_run is running (their whole process groups), and start
    no more. A command being started holds the lock until it is registered, so a stop
    that arrives meanwhile waits for it and kills it too: none slips between the two."""
    global _stopping
    with _running_lock:
        _stopping = True
        groups = list(_running)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def run_command(
    args: RunArgs, client: httpx.Client, settings: McpSettings, *, where: str
) -> RunOutcome:
    """Resolve the references of `args` at the service behind `client`, run the command,
    and return its exit code and scrubbed, capped output. Blocking. ToolError when a
    reference cannot be resolved or the command cannot start (never with a value)."""
    timeout = min(args.timeout_secs or settings.run_timeout_secs, settings.run_timeout_secs)
    cap = min(args.output_cap_bytes or settings.run_output_cap_bytes, settings.run_output_cap_bytes)
    source = ServiceSource(client, where=where)
    try:
        plan = plan_command(args.command, args.env, source, base_env=os.environ, resolve_env=False)
    except (RunError, ServiceUnreachable) as exc:
        raise ToolError(str(exc)) from None
    scrubber = plan.scrubber()
    shown_as = sorted({resolved.placeholder for resolved in plan.resolved.values()})
    outcome = _run(plan.argv, plan.env, scrubber, cwd=args.cwd, timeout=timeout, cap=cap)
    return RunOutcome(
        exit_code=outcome.exit_code,
        stdout=outcome.stdout.kept(),
        stderr=outcome.stderr.kept(),
        timed_out=outcome.timed_out,
        stdout_dropped=outcome.stdout.dropped,
        stderr_dropped=outcome.stderr.dropped,
        shown_as=shown_as,
        not_scrubbed=plan.too_short(),
    )


@dataclass
class _Capped:
    """The first `cap` bytes read from a pipe, and how many more there were."""

    cap: int
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    dropped: int = 0

    def drain(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(_READ):
                room = self.cap - self.size
                if room > 0:
                    self.parts.append(chunk[:room])
                    self.size += min(room, len(chunk))
                self.dropped += max(0, len(chunk) - max(room, 0))

    def kept(self) -> bytes:
        return b"".join(self.parts)


@dataclass
class _Outcome:
    exit_code: int | None
    timed_out: bool
    stdout: _Capped
    stderr: _Capped


def _run(
    argv: list[str],
    env: dict[str, str],
    scrubber: Scrubber,
    *,
    cwd: str | None,
    timeout: float,
    cap: int,
) -> _Outcome:
    with _running_lock:
        if _stopping:
            raise ToolError("patina mcp is stopping: the command was not started")
        try:
            # No controlling terminal (nothing written past the scrubber), and one process
            # group to stop at the timeout, children included.
            child, out_r, err_r = start_piped(
                argv, env, scrubber, stdin=subprocess.DEVNULL, own_session=True, cwd=cwd
            )
        except RunError as exc:
            raise ToolError(str(exc)) from None
        _running.add(child.pid)
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, stop)
    timer.daemon = True
    timer.start()
    # Scrubbed output goes into pipes read by two collectors, each keeping up to the cap
    # (and counting the rest): the scrubber sees the whole stream, the answer only its head.
    stdout, stderr = _Capped(cap), _Capped(cap)
    sink_out_r, sink_out_w = os.pipe()
    sink_err_r, sink_err_w = os.pipe()
    readers = [
        threading.Thread(target=stdout.drain, args=(sink_out_r,), daemon=True),
        threading.Thread(target=stderr.drain, args=(sink_err_r,), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        pump(scrubber, [(out_r, sink_out_w), (err_r, sink_err_w)])
        returncode = child.wait()
    finally:
        timer.cancel()
        os.close(sink_out_w)
        os.close(sink_err_w)
        for reader in readers:
            reader.join()
        if child.poll() is None:
            stop()
            child.wait()
        with _running_lock:
            _running.discard(child.pid)
    timed_out = stopped.is_set()
    return _Outcome(
        exit_code=None if timed_out else exit_status(returncode),
        timed_out=timed_out,
        stdout=stdout,
        stderr=stderr,
    )
