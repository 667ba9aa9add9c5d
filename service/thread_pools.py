"""Thread pools whose threads all exist from the start."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


def full_thread_pool(workers: int, name_prefix: str) -> ThreadPoolExecutor:
    """A ThreadPoolExecutor of `workers` threads, every one of them started now.

    ThreadPoolExecutor starts a thread only when a task finds none idle, so how many a
    service held at rest depended on how busy it had been (a burst of queries left more
    threads than a quiet start): with the pool full from the start, the thread count is a
    constant that a leak check can hold the service to."""
    executor = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix=name_prefix)
    if workers > 0:
        everyone_here = threading.Barrier(workers)
        # Each task blocks until all have started, so no thread can take two of them.
        for future in [executor.submit(everyone_here.wait) for _ in range(workers)]:
            future.result()
    return executor
