"""The audit log: one JSON object per line in data_dir/audit.jsonl, never a secret value.

Serving never waits on the disk: `record()` only appends to a bounded in-memory queue; a
writer thread drains it on an `O_APPEND` descriptor, whole lines per `os.write`, so lines
from concurrent writers never interleave. The writer is woken only when the queue turns
non-empty and then gathers for GATHER_SECS before writing everything queued in one write:
under load that is one wake-up and one system call per batch instead of per event (each
wake-up hands the GIL between threads, which cost more than the event itself). When the
file cannot be written the events stay queued and the writer retries; when the queue is
full new events are dropped and counted (`audit_dropped_total`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.logs import SecondClock

log = logging.getLogger("patina.secrets.audit")

RETRY_SECS = 1.0
GATHER_SECS = 0.002
BATCH_BYTES = 1 << 20


# Built once: `json.dumps` with any option builds a new encoder on every call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_UTC_SECONDS = SecondClock("%Y-%m-%dT%H:%M:%S", time.gmtime)


def utc_now() -> str:
    """RFC 3339 time with microseconds, UTC."""
    now = time.time()
    return f"{_UTC_SECONDS(now)}.{int((now % 1) * 1_000_000):06d}Z"


class AuditLog:
    """An append-only JSON-lines audit file fed through a bounded queue."""

    def __init__(
        self,
        path: Path,
        *,
        buffer_events: int = 10_000,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.buffer_events = buffer_events
        self._on_drop = on_drop
        self._queue: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._writer_idle = False  # waiting for the queue to turn non-empty
        self._batch_offset = 0  # bytes of the head batch already written (short writes)
        self._enqueued = 0
        self._written = 0
        self._stopping = False
        self._failing = False
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def __repr__(self) -> str:
        return f"AuditLog(path={str(self.path)!r}, pending={self.pending}, dropped={self.dropped})"

    @property
    def pending(self) -> int:
        """Events queued but not yet on disk."""
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="patina-audit", daemon=True)
            self._thread.start()

    def record(self, event: str, **fields: Any) -> None:
        """Queue one event. Never blocks on I/O; drops (and counts) when the queue is full.

        Callers pass names, principals and outcomes only: nothing here can tell a value
        from a name, so a value must never be handed in.
        """
        line = _COMPACT_JSON.encode({"ts": utc_now(), "event": event, **fields})
        data = line.encode() + b"\n"
        with self._cond:
            if len(self._queue) >= self.buffer_events:
                self.dropped += 1
                dropped = True
            else:
                self._queue.append(data)
                self._enqueued += 1
                dropped = False
                if self._writer_idle:
                    self._cond.notify()
        if dropped and self._on_drop is not None:
            self._on_drop()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event queued so far is on disk. False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._enqueued
            while self._written < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (for up to `timeout`), then stop the writer."""
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close_fd()

    # The writer thread.

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._writer_idle = True
                    self._cond.wait()
                self._writer_idle = False
                if not self._queue:
                    return
                gather = not self._stopping
            if gather:
                time.sleep(GATHER_SECS)  # let a burst of events join this batch
            with self._cond:
                batch, count = self._head_batch()
            if self._write(batch):
                with self._cond:
                    for _ in range(count):
                        self._queue.popleft()
                    self._written += count
                    self._cond.notify_all()
            else:
                with self._cond:
                    if self._stopping:
                        return
                    self._cond.wait(RETRY_SECS)

    def _head_batch(self) -> tuple[bytes, int]:
        """Whole lines from the head of the queue, up to BATCH_BYTES (at least one), and
        how many."""
        lines: list[bytes] = []
        size = 0
        for line in self._queue:
            if lines and size + len(line) > BATCH_BYTES:
                break
            lines.append(line)
            size += len(line)
        return b"".join(lines), len(lines)

    def _write(self, batch: bytes) -> bool:
        """Write `batch` (resuming after a short write); True once all of it is on file."""
        try:
            fd = self._open()
            while self._batch_offset < len(batch):
                self._batch_offset += os.write(fd, batch[self._batch_offset :])
        except OSError as exc:
            self._close_fd()
            if not self._failing:
                self._failing = True
                log.error(
                    "audit log not writable; buffering events in memory",
                    extra={"fields": {"path": str(self.path), "error": exc.strerror or str(exc)}},
                )
            return False
        self._batch_offset = 0
        if self._failing:
            self._failing = False
            log.warning("audit log writable again", extra={"fields": {"path": str(self.path)}})
        return True

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self.path, flags, 0o600)
            mode = os.fstat(fd).st_mode & 0o777
            if mode & 0o077:
                # An older file with a wider mode: narrow it before writing anything more.
                os.fchmod(fd, 0o600)
                log.warning(
                    "audit log was readable by others; mode set to 600",
                    extra={"fields": {"path": str(self.path), "old_mode": f"{mode:o}"}},
                )
            self._fd = fd
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of the audit file (reads backwards in blocks)."""
    if count <= 0:
        return []
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        data = b""
        block = 64 * 1024
        while end > 0 and data.count(b"\n") <= count:
            start = max(0, end - block)
            fh.seek(start)
            data = fh.read(end - start) + data
            end = start
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:]
