"""A hand-driven monotonic clock, for what times TTLs (session cache, handles)."""

from __future__ import annotations


class HandClock:
    """Returns `now`, which a test moves forward itself."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
