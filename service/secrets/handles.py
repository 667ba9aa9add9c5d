"""Opaque handles: `<secret:…>` tokens that stand for a secret name, bound to the caller
that minted them, with a TTL and an optional use count.

An agent sees and writes handles; only `patina secrets run`, acting as the same caller,
turns them back into values at the last mile. A handle holds no value: resolving one reads
the secret through the broker again, so allowlists and audit apply at use time too.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.errors import Forbidden, NotFound, ServiceBusy

HANDLE_RE = re.compile(r"<secret:([0-9a-f]{32})>")
_ID_RE = re.compile(r"[0-9a-f]{32}")


def format_handle(handle_id: str) -> str:
    return f"<secret:{handle_id}>"


def handle_id_of(text: str) -> str | None:
    """The id inside `<secret:ID>` or a bare ID; None when `text` is neither."""
    match = HANDLE_RE.fullmatch(text)
    if match:
        return match.group(1)
    return text if _ID_RE.fullmatch(text) else None


@dataclass
class HandleRecord:
    """What a handle stands for. `owner` is the minting principal's name."""

    handle_id: str
    name: str
    owner: str
    expires_at: float  # time.monotonic()
    expires_wall: float  # time.time(), for responses
    uses_left: int | None

    @property
    def handle(self) -> str:
        return format_handle(self.handle_id)


class HandleStore:
    """In-memory handles of one service. Thread-safe: routes may run on worker threads."""

    def __init__(
        self,
        *,
        max_ttl_secs: int,
        max_per_owner: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_ttl_secs = max_ttl_secs
        self.max_per_owner = max_per_owner
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, HandleRecord] = {}

    def __repr__(self) -> str:
        return f"HandleStore(live={len(self._records)})"

    def mint(self, owner: str, name: str, *, ttl_secs: int, uses: int | None) -> HandleRecord:
        """A new handle for `name`, owned by `owner`. The TTL is capped by the store's
        maximum; the caller has already checked that `owner` may read `name`."""
        ttl = min(ttl_secs, self.max_ttl_secs)
        now = self._clock()
        with self._lock:
            self._purge(now)
            if sum(1 for r in self._records.values() if r.owner == owner) >= self.max_per_owner:
                raise ServiceBusy("too many live handles for this caller; revoke some")
            record = HandleRecord(
                handle_id=secrets.token_hex(16),
                name=name,
                owner=owner,
                expires_at=now + ttl,
                expires_wall=time.time() + ttl,
                uses_left=uses,
            )
            self._records[record.handle_id] = record
        return record

    def claim(self, owner: str, handle_ids: list[str]) -> list[HandleRecord]:
        """Check that every handle is live and owned by `owner`, then spend one use of
        each. All or nothing: a bad handle spends no use of the others."""
        now = self._clock()
        with self._lock:
            self._purge(now)
            records = []
            for handle_id in handle_ids:
                record = self._records.get(handle_id)
                if record is None:
                    raise NotFound(f"handle {format_handle(handle_id)} is unknown or expired")
                if record.owner != owner:
                    raise Forbidden(f"handle {format_handle(handle_id)} belongs to another caller")
                records.append(record)
            needed: dict[str, int] = {}
            for record in records:
                needed[record.handle_id] = needed.get(record.handle_id, 0) + 1
            for handle_id, count in needed.items():
                left = self._records[handle_id].uses_left
                if left is not None and left < count:
                    raise NotFound(f"handle {format_handle(handle_id)} has no uses left")
            for handle_id, count in needed.items():
                record = self._records[handle_id]
                if record.uses_left is not None:
                    record.uses_left -= count
                    if record.uses_left == 0:
                        del self._records[handle_id]
            return records

    def owned_by(self, owner: str) -> list[HandleRecord]:
        """The owner's live handles, soonest to expire first."""
        with self._lock:
            self._purge(self._clock())
            mine = [r for r in self._records.values() if r.owner == owner]
        return sorted(mine, key=lambda r: r.expires_at)

    def revoke(self, owner: str, handle_id: str) -> None:
        """Drop one of the owner's handles now."""
        with self._lock:
            record = self._records.get(handle_id)
            if record is None or record.expires_at <= self._clock():
                raise NotFound(f"handle {format_handle(handle_id)} is unknown or expired")
            if record.owner != owner:
                raise Forbidden(f"handle {format_handle(handle_id)} belongs to another caller")
            del self._records[handle_id]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def _purge(self, now: float) -> None:
        expired = [k for k, r in self._records.items() if r.expires_at <= now]
        for key in expired:
            del self._records[key]
