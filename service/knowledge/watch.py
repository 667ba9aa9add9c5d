"""Live index: watch the indexed roots and bring the index up to date with each change.

`watchfiles` (inotify through Rust's notify; polling when asked, or where inotify is
missing) reports changed paths; a burst of them (an editor's save, a checkout, a build) is
coalesced over DEBOUNCE_MS into one batch, so a storm costs a few updates, not one per file.
Each batch becomes one `Indexer.update` of the files it touched, judged by the walker's own
rules (`Tree.listed`: .gitignore, symlinks, the service's own files) and the secret-file
rules, so a watched tree holds exactly what a full run would index. A changed directory or
.gitignore, or a batch too large to be worth taking path by path, re-walks the root
instead; an unchanged file costs a hash, and unchanged chunks keep their vectors.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from service.knowledge.indexer import Indexer, IndexReport
from service.knowledge.walker import SKIP_DIRS

log = logging.getLogger("patina.knowledge")

DEBOUNCE_MS = 300  # longest a burst is gathered before it is applied
STEP_MS = 50  # a burst ends after this long without a change
MAX_PATHS = 2000  # a batch touching more files re-walks the root instead


@dataclass(frozen=True)
class Batch:
    """The changes of one burst under one root: the files to look at again (relative
    paths), or `rewalk` when the whole root must be listed again."""

    root: Path
    paths: frozenset[str]
    rewalk: bool


def batches(
    roots: Iterable[Path],
    changed: Iterable[tuple[watchfiles.Change, str]],
    *,
    ignored: Callable[[str], bool],
) -> list[Batch]:
    """Group `changed` absolute paths by the root they lie in (the deepest one), dropping
    those `ignored` says never matter (the service's own files, VCS directories)."""
    ordered = sorted({r.resolve() for r in roots}, key=lambda r: len(r.parts), reverse=True)
    found: dict[Path, set[str]] = {}
    rewalk: set[Path] = set()
    for change, raw in changed:
        if ignored(raw):
            continue
        path = Path(raw)
        root = next((r for r in ordered if path.is_relative_to(r)), None)
        if root is None:
            continue
        rel = path.relative_to(root).as_posix()
        if _is_dir(path):
            # A directory moved or copied in: list the root again. A directory whose
            # entries changed reports them itself; one removed or moved away is found by
            # its indexed files (Indexer.update).
            if change == watchfiles.Change.added:
                rewalk.add(root)
            continue
        if rel == ".":
            continue
        if path.name == ".gitignore":
            rewalk.add(root)  # a new rule set: every file may be in or out now
        found.setdefault(root, set()).add(rel)
    out = []
    for root in sorted(found.keys() | rewalk):
        paths = frozenset(found.get(root, ()))
        out.append(Batch(root, paths, root in rewalk or len(paths) > MAX_PATHS))
    return out


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def never_indexed(service_paths: Iterable[Path]) -> Callable[[str], bool]:
    """A filter for changed paths that can never change the index: inside a VCS
    directory, or the service's own files and directories (the index itself may live in
    a watched root, and its own writes must not wake the watcher)."""
    own = [str(p.expanduser().resolve()) for p in service_paths]

    def ignored(raw: str) -> bool:
        if any(part in SKIP_DIRS for part in Path(raw).parts):
            return True
        return any(raw == p or raw.startswith(p + os.sep) or raw in _sqlite_files(p) for p in own)

    return ignored


def _sqlite_files(path: str) -> tuple[str, ...]:
    return (f"{path}-wal", f"{path}-shm", f"{path}-journal")


def watch_roots(
    roots: list[Path],
    apply: Callable[[Batch], None],
    *,
    stop: threading.Event,
    ignored: Callable[[str], bool],
    force_polling: bool = False,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Call `apply` with each batch of changes under `roots` until `stop` is set. A batch
    that fails is logged and dropped (the next change, or the next full run, catches up):
    a vanished file or directory never ends the watch. `ready` is called once the
    watcher is installed."""
    resolved = [r.resolve() for r in roots]

    def relevant(_change: watchfiles.Change, raw: str) -> bool:
        return not ignored(raw)

    # watchfiles installs its watches when the generator starts; `ready` fires on the
    # first timeout tick, after which every change is reported.
    watcher = watchfiles.watch(
        *resolved,
        watch_filter=relevant,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=stop,
        rust_timeout=200,
        yield_on_timeout=True,
        force_polling=force_polling,
        poll_delay_ms=100,
        raise_interrupt=False,
        ignore_permission_denied=True,
    )
    announced = False
    for changes in watcher:
        if not announced:
            announced = True
            ready()
        if not changes:
            continue
        for batch in batches(resolved, changes, ignored=ignored):
            try:
                apply(batch)
            except Exception:
                log.exception("updating the index for %d changed paths failed", len(batch.paths))


def update_index(indexer: Indexer, batch: Batch, *, repo: str, embed: bool) -> IndexReport:
    """Apply one batch: the files it names, or the whole root when it asks for a re-walk."""
    if batch.rewalk:
        return indexer.index(batch.root, repo=repo, embed=embed)
    return indexer.update(batch.root, batch.paths, repo=repo, embed=embed)
