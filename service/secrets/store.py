"""The in-memory secret store: immutable snapshots of bytearray values, swapped atomically.

A push builds a new Snapshot and swaps it in; the old one is retired. A read holds its
snapshot for the duration of the read (`store.reading()`), so a read in flight finishes on
the set it started with; a retired snapshot is wiped (every value overwritten with zeros)
as soon as its last reader lets go. Nothing here ever renders a value: reprs show names
and counts only.

Python strings cannot be wiped, so values live as bytearrays from the moment the store
gets them; the str objects a JSON body was parsed into are the caller's to drop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


def wipe(buffer: bytearray) -> None:
    """Overwrite a buffer in place with zeros (same length: no reallocation)."""
    buffer[:] = bytes(len(buffer))


class Snapshot:
    """One generation of the secret set. Values are readable until the snapshot is wiped."""

    __slots__ = ("_lock", "_readers", "_retired", "_values", "generation", "loaded_at")

    def __init__(self, values: dict[str, bytearray], *, generation: int, loaded_at: float) -> None:
        self._values = values
        self.generation = generation
        self.loaded_at = loaded_at
        self._readers = 0
        self._retired = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Snapshot(generation={self.generation}, count={len(self._values)})"

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def names(self) -> list[str]:
        return sorted(self._values)

    def get(self, name: str) -> bytes | None:
        """A copy of the value (immutable bytes for the caller), or None when absent."""
        value = self._values.get(name)
        return None if value is None else bytes(value)

    def _acquire(self) -> bool:
        with self._lock:
            if self._retired:
                return False
            self._readers += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self._readers -= 1
            wipe_now = self._retired and self._readers == 0
        if wipe_now:
            self._wipe()

    def _retire(self) -> None:
        with self._lock:
            self._retired = True
            wipe_now = self._readers == 0
        if wipe_now:
            self._wipe()

    def _wipe(self) -> None:
        for value in self._values.values():
            wipe(value)


class SecretStore:
    """The current snapshot plus a generation counter. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._current = Snapshot({}, generation=0, loaded_at=0.0)

    def __repr__(self) -> str:
        return f"SecretStore(generation={self._current.generation}, count={len(self._current)})"

    __str__ = __repr__

    @property
    def current(self) -> Snapshot:
        """The live snapshot, for metadata (generation, names, count). Read values through
        `reading()` so the snapshot cannot be wiped under the reader."""
        return self._current

    def replace(self, values: Mapping[str, str | bytes]) -> Snapshot:
        """Swap in a new set (names must already be valid). Returns the new snapshot."""
        fresh = {
            name: bytearray(value.encode() if isinstance(value, str) else value)
            for name, value in values.items()
        }
        return self._swap(fresh)

    def clear(self) -> Snapshot:
        """Swap in an empty set; the old values are wiped once their readers finish."""
        return self._swap({})

    def close(self) -> None:
        """Shutdown: retire the live set, wiping it (readers still inside finish first)."""
        with self._lock:
            old = self._current
            self._current = Snapshot({}, generation=self._generation, loaded_at=time.time())
        old._retire()

    @contextmanager
    def reading(self) -> Iterator[Snapshot]:
        """Hold the live snapshot for one read; it is not wiped until the block exits."""
        snapshot = self._hold()
        try:
            yield snapshot
        finally:
            snapshot._release()

    def value_of(self, name: str) -> tuple[bytes | None, int]:
        """A copy of one value (None when absent) and the generation it came from, taken
        while the snapshot counts this reader (as `reading()`, without its overhead: a
        secret read does this on every request)."""
        snapshot = self._hold()
        try:
            return snapshot.get(name), snapshot.generation
        finally:
            snapshot._release()

    def _hold(self) -> Snapshot:
        """The live snapshot, counted as read (so not wiped) until `_release`."""
        while True:
            snapshot = self._current
            # Lost a race with a swap that retired it: take the newer one.
            if snapshot._acquire():
                return snapshot

    def _swap(self, values: dict[str, bytearray]) -> Snapshot:
        with self._lock:
            self._generation += 1
            fresh = Snapshot(values, generation=self._generation, loaded_at=time.time())
            old, self._current = self._current, fresh
        old._retire()
        return fresh
