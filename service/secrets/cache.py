"""The Patina session cache: a caller's own decrypted secrets, kept for a short while.

Patina clients decrypt their vault locally and park the result here (`POST /secrets/cache`)
to avoid unlocking again within a session. Each principal sees only its own entry. The TTL
is capped by `secrets.cache_max_ttl_secs`; a timer purges expired entries (wiping their
bytes) whether or not anyone reads them; `POST /secrets/lock` drops the entry at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from service.aio import cancel_and_wait
from service.secrets.store import wipe

DEFAULT_TTL_SECS = 600


@dataclass
class _Entry:
    values: dict[str, bytearray]
    expires_at: float

    def __repr__(self) -> str:
        return f"_Entry(count={len(self.values)}, expires_at={self.expires_at:.0f})"

    def wipe(self) -> None:
        for value in self.values.values():
            wipe(value)


class SessionCache:
    """Per-principal cache entries with a capped TTL."""

    def __init__(self, *, max_ttl_secs: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_ttl_secs = max_ttl_secs
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SessionCache(entries={len(self._entries)})"

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, principal: str, values: Mapping[str, str], ttl_secs: int) -> int:
        """Replace the principal's entry; returns the TTL actually applied (capped)."""
        ttl = max(1, min(ttl_secs, self.max_ttl_secs))
        entry = _Entry(
            values={name: bytearray(value.encode()) for name, value in values.items()},
            expires_at=self._clock() + ttl,
        )
        with self._lock:
            old = self._entries.get(principal)
            self._entries[principal] = entry
        if old is not None:
            old.wipe()
        return ttl

    def get(self, principal: str) -> dict[str, str] | None:
        """The principal's live entry, or None when absent or expired."""
        with self._lock:
            entry = self._entries.get(principal)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                del self._entries[principal]
                expired = entry
            else:
                return {name: value.decode() for name, value in entry.values.items()}
        expired.wipe()
        return None

    def lock(self, principal: str) -> bool:
        """Drop the principal's entry now. True when there was one."""
        with self._lock:
            entry = self._entries.pop(principal, None)
        if entry is None:
            return False
        entry.wipe()
        return True

    def purge_expired(self) -> int:
        """Drop and wipe every expired entry; returns how many."""
        now = self._clock()
        with self._lock:
            expired = [key for key, entry in self._entries.items() if entry.expires_at <= now]
            dropped = [self._entries.pop(key) for key in expired]
        for entry in dropped:
            entry.wipe()
        return len(dropped)

    def clear(self) -> None:
        """Drop and wipe everything (shutdown)."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            entry.wipe()

    def start(self, *, purge_secs: float) -> None:
        """Start the purge timer on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._purge_loop(purge_secs))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.clear()

    async def _purge_loop(self, purge_secs: float) -> None:
        while True:
            await asyncio.sleep(purge_secs)
            self.purge_expired()
