"""The gate and the deadline: 503 when full, 504 past the deadline with the work stopped,
and slots and threads always returned."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.cancel import Cancel, Cancelled
from service.errors import DeadlineExceeded, ServiceBusy
from service.query_runner import QueryRunner

pytestmark = pytest.mark.anyio


def _wait_for_cancel(cancel: Cancel, seconds: float = 10.0) -> str:
    """Work that stops only when told to, like an interrupted SQLite query."""
    stop = threading.Event()
    cancel.on_cancel(stop.set)
    if not stop.wait(seconds):
        return "ran to the end"
    raise Cancelled()


async def _settle(runner: QueryRunner) -> None:
    for _ in range(200):
        if runner.gate.in_use == 0:
            return
        await asyncio.sleep(0.01)


async def test_work_returns_its_result_and_frees_the_slot() -> None:
    runner = QueryRunner(slots=2, default_timeout=5)
    assert await runner.run(lambda cancel: 41 + 1) == 42
    await _settle(runner)
    assert runner.gate.in_use == 0
    runner.close()


async def test_a_full_gate_answers_503_at_once_with_retry_after() -> None:
    rejected: list[str] = []
    runner = QueryRunner(slots=1, default_timeout=5, on_reject=rejected.append)
    release = threading.Event()
    first = asyncio.create_task(runner.run(lambda cancel: release.wait(5)))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(ServiceBusy) as busy:
        await runner.run(lambda cancel: None)
    assert time.monotonic() - started < 1.0
    assert busy.value.status_code == 503
    assert busy.value.headers == {"Retry-After": "1"}
    assert rejected == ["busy"]
    release.set()
    await first
    runner.close()


async def test_past_the_deadline_the_work_is_stopped_not_abandoned() -> None:
    runner = QueryRunner(slots=1, default_timeout=5)
    outcome: list[str] = []

    def work(cancel: Cancel) -> str:
        try:
            return _wait_for_cancel(cancel)
        except Cancelled:
            outcome.append("stopped")
            raise

    with pytest.raises(DeadlineExceeded):
        await runner.run(work, timeout=0.1)
    await _settle(runner)
    assert outcome == ["stopped"]
    assert runner.gate.in_use == 0
    runner.close()


async def test_the_slot_is_held_until_the_thread_really_finishes() -> None:
    # Work that ignores cancellation for a while must keep its slot: no oversubscription.
    runner = QueryRunner(slots=1, default_timeout=5)
    with pytest.raises(DeadlineExceeded):
        await runner.run(lambda cancel: time.sleep(0.4), timeout=0.05)
    with pytest.raises(ServiceBusy):
        await runner.run(lambda cancel: None)
    await _settle(runner)
    assert await runner.run(lambda cancel: "free again") == "free again"
    runner.close()


async def test_errors_and_cancellation_release_slots_under_concurrency() -> None:
    runner = QueryRunner(slots=4, default_timeout=5)
    threads_before = threading.active_count()

    def fail(cancel: Cancel) -> None:
        raise ValueError("boom")

    async def one(i: int) -> str:
        try:
            if i % 3 == 0:
                await runner.run(fail)
            elif i % 3 == 1:
                await runner.run(_wait_for_cancel, timeout=0.02)
            else:
                task = asyncio.create_task(runner.run(_wait_for_cancel))
                await asyncio.sleep(0.01)
                task.cancel()
                await task
        except (ValueError, DeadlineExceeded, ServiceBusy, asyncio.CancelledError) as exc:
            return type(exc).__name__
        return "ok"

    results: list[str] = []
    for _round in range(60):  # each round: one failure, one deadline, one client gone
        results += await asyncio.gather(*(one(i) for i in range(3)))
        await _settle(runner)
    assert runner.gate.in_use == 0
    assert set(results) == {"ValueError", "DeadlineExceeded", "CancelledError"}
    runner.close()
    assert runner.worker_threads == 0
    assert threading.active_count() <= threads_before


async def test_async_work_is_bounded_too() -> None:
    runner = QueryRunner(slots=1, default_timeout=5)
    with pytest.raises(DeadlineExceeded):
        await runner.run_async(lambda: asyncio.sleep(5), timeout=0.05)
    assert runner.gate.in_use == 0

    async def hold() -> str:
        await asyncio.sleep(0.2)
        return "done"

    task = asyncio.create_task(runner.run_async(hold))
    await asyncio.sleep(0.02)
    with pytest.raises(ServiceBusy):
        await runner.run_async(hold)
    assert await task == "done"
    assert runner.gate.in_use == 0
    runner.close()


def test_a_hook_registered_after_the_deadline_runs_at_once() -> None:
    cancel = Cancel()
    cancel.fire()
    fired: list[int] = []
    cancel.on_cancel(lambda: fired.append(1))
    assert fired == [1]
    with pytest.raises(Cancelled):
        cancel.raise_if_cancelled()


def test_every_worker_thread_exists_from_the_start() -> None:
    """The thread count at rest is a constant, whatever the history of timeouts."""
    runner = QueryRunner(slots=3, default_timeout=0.001)
    started = {t.ident for t in threading.enumerate() if t.name.startswith("patina-work")}
    try:
        assert len(started) >= 3  # ours (another test's runner may still be closing)
        asyncio.run(_a_burst_of_timeouts(runner))
        now = {t.ident for t in threading.enumerate() if t.name.startswith("patina-work")}
        assert now <= started, "a burst of timeouts started worker threads"
    finally:
        runner.close()


async def _a_burst_of_timeouts(runner: QueryRunner) -> None:
    def slow(cancel: Cancel) -> str:
        return _wait_for_cancel(cancel, 0.05)

    for _ in range(20):
        results = await asyncio.gather(
            *(runner.run(slow) for _ in range(6)), return_exceptions=True
        )
        assert all(isinstance(r, DeadlineExceeded | ServiceBusy) for r in results)
        await _settle(runner)
