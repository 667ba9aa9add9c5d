"""The handle a piece of query or indexing work is given to notice its deadline.

Work checks `cancelled` between steps and registers stop hooks for the step in progress
(SQLite `interrupt`, ONNX `RunOptions.terminate`); the query runner (query_runner.py)
fires it when the deadline passes or the client goes away.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Cancelled(Exception):
    """Raised inside work that noticed its Cancel fired."""


class Cancel:
    """Handed to bounded work: check `cancelled` between steps, register stop hooks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fired = False
        self._hooks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._fired

    def raise_if_cancelled(self) -> None:
        if self._fired:
            raise Cancelled()

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run `hook` when the deadline passes (at once if it already has). Returns an
        unregister function so a hook bound to a finished step cannot fire later."""
        with self._lock:
            if not self._fired:
                self._hooks.append(hook)
                return lambda: self._remove(hook)
        hook()
        return lambda: None

    def _remove(self, hook: Callable[[], None]) -> None:
        with self._lock:
            if hook in self._hooks:
                self._hooks.remove(hook)

    def fire(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()
