"""The service's background embedding pass: whatever chunks the index holds without a vector
(written by `patina index --no-wait`, by the watcher, by a run cut short) get one here.

One thread, at the lowest CPU priority the process may set for it, so queries win the
cores; it wakes when asked (after the service's own writes) and when another process moved
the index's generation, checked every POLL_SECONDS. Queries never wait on it: it holds no
lock a query takes, and its writes are short transactions of finished vectors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.cancel import Cancel
from service.knowledge import store
from service.knowledge.embedder import TextEmbedder
from service.knowledge.embedding_pass import embed_pending

log = logging.getLogger("patina.knowledge")

POLL_SECONDS = 2.0
LOWEST_NICE = 19


@dataclass(frozen=True)
class EmbeddingState:
    """What the background pass is doing: `running` while a pass is under way, with the
    chunks it has embedded of those it found (`done` of `total`)."""

    running: bool = False
    done: int = 0
    total: int = 0


class BackgroundEmbedder:
    """Runs the embedding pass over the index at `path` whenever chunks lack vectors."""

    def __init__(
        self,
        path: Path,
        embedder: TextEmbedder,
        *,
        pass_lock: threading.Lock,
        on_embedded: Callable[[int], None] = lambda count: None,
    ) -> None:
        """`pass_lock` is held for each pass: whoever else embeds this index in this
        process (an indexing run) takes it too, so two passes never race for one chunk.
        `on_embedded(count)` is called after each committed group and once (count 0)
        when a pass ends."""
        self.path = path
        self.embedder = embedder
        self._pass_lock = pass_lock
        self._on_embedded = on_embedded
        self._wake = threading.Event()
        self._cancel = Cancel()
        self._state = EmbeddingState()
        self._state_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="patina-embed", daemon=True)

    def start(self) -> None:
        self._wake.set()  # an index left half-embedded by an earlier run is finished first
        self._thread.start()

    def wake(self) -> None:
        """Look for chunks without vectors now rather than at the next poll."""
        self._wake.set()

    @property
    def state(self) -> EmbeddingState:
        with self._state_lock:
            return self._state

    def close(self) -> None:
        """Stop the pass (the ONNX run in progress is terminated) and join the thread."""
        self._cancel.fire()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        # Linux sets priority per thread: this one yields the cores to queries.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_NICE)
        conn = None
        seen_generation = -1
        try:
            conn = store.connect(self.path)
            while not self._cancel.cancelled:
                woken = self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                if self._cancel.cancelled:
                    break
                try:
                    current = store.generation(conn)
                    if not woken and current == seen_generation:
                        continue
                    self._run_pass(conn)
                    seen_generation = store.generation(conn)
                except Exception as exc:
                    if self._cancel.cancelled:
                        break
                    seen_generation = -1
                    # Tried again at the next poll (a locked or busy index, a model error).
                    log.warning("background embedding pass failed: %s", type(exc).__name__)
        except sqlite3.Error:
            log.exception("the background embedding pass cannot open the index")
        finally:
            with self._state_lock:
                self._state = EmbeddingState()
            if conn is not None:
                conn.close()

    def _run_pass(self, conn: sqlite3.Connection) -> None:
        with self._pass_lock:
            done = embed_pending(conn, self.embedder, cancel=self._cancel, progress=self._progress)
        with self._state_lock:
            self._state = EmbeddingState()
        if done:
            log.info("background embedding pass: %d chunks embedded", done)
            self._on_embedded(0)

    def _progress(self, _stage: str, done: int, total: int) -> None:
        with self._state_lock:
            previous = self._state.done
            self._state = EmbeddingState(running=True, done=done, total=total)
        if done > previous:
            self._on_embedded(done - previous)
