"""The index's read pool holds a fixed set of connections at rest, whatever the history of
deadlines, so a process's open files do not drift with timeouts."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from service.cancel import Cancel
from service.knowledge import store


def _index_fds(tmp_path: Path) -> int:
    """This process's descriptors on the index file (and its WAL and shm files), read in
    one pass: other fds of the test process (a socket a collected object closes, a
    thread's pipe) come and go and must not count."""
    index = str(tmp_path / "index.sqlite")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(index)
    return count


def _pool(tmp_path: Path, size: int) -> store.ReadPool:
    path = tmp_path / "index.sqlite"
    store.open_index(path).close()
    return store.ReadPool(path, size=size)


def test_connections_a_deadline_interrupted_are_replaced_not_leaked_or_lost(
    tmp_path: Path,
) -> None:
    pool = _pool(tmp_path, size=2)
    with pool.borrow() as conn:
        conn.execute("SELECT count(*) FROM chunks").fetchone()
    at_rest = _index_fds(tmp_path)
    for _ in range(20):
        cancel = Cancel()
        with pool.borrow(cancel) as conn:
            conn.execute("SELECT 1").fetchone()
            cancel.fire()  # the deadline passed while the query held this connection
    assert _index_fds(tmp_path) == at_rest
    with pool.borrow() as conn:  # the replacements work
        assert conn.execute("SELECT 1").fetchone() == (1,)
    pool.close()


def test_borrows_beyond_the_size_get_spares_that_do_not_accumulate(tmp_path: Path) -> None:
    pool = _pool(tmp_path, size=2)
    at_rest = _index_fds(tmp_path)
    after: list[int] = []
    for _ in range(5):
        with contextlib.ExitStack() as borrowed:
            conns = [borrowed.enter_context(pool.borrow()) for _ in range(4)]
            assert len({id(c) for c in conns}) == 4
        after.append(_index_fds(tmp_path))
    # SQLite keeps a closed connection's file open for reuse while other connections of
    # the process hold locks on it, so the first round may leave a bounded few; later
    # rounds reuse them instead of adding more.
    assert after[0] <= at_rest + 2 * 2
    assert after == [after[0]] * 5
    pool.close()
    assert _index_fds(tmp_path) < at_rest  # close() released the pooled connections too
