"""Where query work runs and where it is cancelled: a concurrency gate and a deadline that
stops the work itself.

Query work (SQLite, ONNX) is blocking, so it runs on a small dedicated thread pool whose
size equals the gate. A caller that cannot get a slot is answered 503 at once. Past its
deadline the caller is answered 504 and the work is told to stop through its Cancel
(SQLite `interrupt`, ONNX `RunOptions.terminate`); the slot is released only when the
thread has really finished, so slots and threads can never leak or oversubscribe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from service.cancel import Cancel
from service.errors import DeadlineExceeded, ServiceBusy
from service.thread_pools import full_thread_pool

T = TypeVar("T")


class Gate:
    """A fixed number of slots; `try_acquire` never waits."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_acquire(self) -> bool:
        if self._in_use >= self.slots:
            return False
        self._in_use += 1
        return True

    def release(self) -> None:
        assert self._in_use > 0, "gate released more often than acquired"
        self._in_use -= 1


class QueryRunner:
    """Runs blocking or async query work under the gate and a deadline; past the deadline
    it fires the work's Cancel (the work stops) and answers 504."""

    def __init__(
        self,
        *,
        slots: int,
        default_timeout: float,
        on_reject: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.gate = Gate(slots)
        self.default_timeout = default_timeout
        self._on_reject = on_reject
        self._executor = full_thread_pool(slots, "patina-work")

    async def run(self, work: Callable[[Cancel], T], *, timeout: float | None = None) -> T:
        """Run blocking `work(cancel)` on a worker thread; 503 if no slot, 504 past deadline."""
        if not self.gate.try_acquire():
            self._on_reject("busy")
            raise ServiceBusy()
        loop = asyncio.get_running_loop()
        cancel = Cancel()
        try:
            future = loop.run_in_executor(self._executor, work, cancel)
        except BaseException:
            self.gate.release()
            raise
        # The slot follows the thread, not the caller: it returns when the work ends.
        future.add_done_callback(lambda _f: self.gate.release())
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout or self.default_timeout)
        except TimeoutError:
            cancel.fire()
            _consume_result(future)
            self._on_reject("deadline")
            raise DeadlineExceeded() from None
        except asyncio.CancelledError:
            # The client went away: stop the work too.
            cancel.fire()
            _consume_result(future)
            raise

    async def run_async(
        self, work: Callable[[], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        """Run async `work()` under the gate with a deadline (cancellation stops it)."""
        if not self.gate.try_acquire():
            self._on_reject("busy")
            raise ServiceBusy()
        try:
            async with asyncio.timeout(timeout or self.default_timeout):
                return await work()
        except TimeoutError:
            self._on_reject("deadline")
            raise DeadlineExceeded() from None
        finally:
            self.gate.release()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def worker_threads(self) -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("patina-work"))


def _consume_result(future: asyncio.Future[Any]) -> None:
    # Retrieve a late exception (usually Cancelled) so asyncio does not log it as unhandled.
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
