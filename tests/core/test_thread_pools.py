"""A pool's threads all exist from the start, so a leak check can count them."""

from __future__ import annotations

import threading

from service.thread_pools import full_thread_pool


def _named(prefix: str) -> set[int | None]:
    return {t.ident for t in threading.enumerate() if t.name.startswith(prefix)}


def test_every_thread_is_started_before_any_work_and_a_burst_adds_none() -> None:
    pool = full_thread_pool(4, "test-full-pool")
    try:
        started = _named("test-full-pool")
        assert len(started) == 4
        # A burst of concurrent tasks, more than the pool holds, starts no further thread.
        gate = threading.Barrier(4)
        futures = [pool.submit(gate.wait) for _ in range(8)]
        for future in futures:
            future.result(timeout=10)
        assert _named("test-full-pool") == started
    finally:
        pool.shutdown(wait=True)
    assert _named("test-full-pool") == set()
