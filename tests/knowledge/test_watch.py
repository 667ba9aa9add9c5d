"""The live index, driven by real file changes: saves, renames, deletions, directories
moved and removed, ignored and secret-bearing files, a storm of writes, and the service's
`knowledge.watch`."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.knowledge import store
from service.knowledge.embedder import Embedder
from service.knowledge.indexer import Indexer, IndexReport
from service.knowledge.service import index_path, service_paths
from service.knowledge.watch import Batch, never_indexed, update_index, watch_roots
from service.settings import Settings, load_settings

from .conftest import ApiFactory, index_dir

WAIT_SECONDS = 60  # generous: the machine is shared; a pass is usually well under a second


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_SECONDS}s: {what}")
        time.sleep(0.05)


@dataclass
class Watching:
    """A watcher over one root, applying its batches to the index as the service does."""

    settings: Settings
    root: Path
    reports: list[IndexReport] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)

    def paths(self) -> set[str]:
        conn = store.connect(index_path(self.settings))
        try:
            return {row[0] for row in conn.execute("SELECT path FROM documents")}
        finally:
            conn.close()

    def has(self, rel: str) -> Callable[[], bool]:
        return lambda: rel in self.paths()

    def lacks(self, rel: str) -> Callable[[], bool]:
        return lambda: rel not in self.paths()


@contextlib.contextmanager
def start_watching(
    settings: Settings, embedder: Embedder, root: Path, *, polling: bool, embed: bool
) -> Iterator[Watching]:
    watching = Watching(settings, root)
    conn = store.open_index(index_path(settings))
    indexer = Indexer(conn, embedder, settings.knowledge, service_paths=service_paths(settings))
    stop = threading.Event()
    ready = threading.Event()

    def apply(batch: Batch) -> None:
        watching.batches.append(batch)
        watching.reports.append(update_index(indexer, batch, repo=root.name, embed=embed))

    thread = threading.Thread(
        target=watch_roots,
        args=([root], apply),
        kwargs={
            "stop": stop,
            "ignored": never_indexed(service_paths(settings)),
            "force_polling": polling,
            "ready": ready.set,
        },
        daemon=True,
    )
    thread.start()
    assert ready.wait(WAIT_SECONDS)
    try:
        yield watching
    finally:
        stop.set()
        thread.join()
        conn.close()


@pytest.fixture(params=["inotify", "polling"])
def watching(
    request: pytest.FixtureRequest, settings: Settings, embedder: Embedder, corpus: Path
) -> Iterator[Watching]:
    index_dir(settings, embedder, corpus, embed=False)
    polling = request.param == "polling"
    with start_watching(settings, embedder, corpus, polling=polling, embed=False) as watching:
        yield watching


def test_saved_renamed_and_deleted_files_follow_the_tree(watching: Watching) -> None:
    root = watching.root
    (root / "src/ledger.py").write_text("def settle_ledger():\n    return 'balanced'\n")
    wait_until(watching.has("src/ledger.py"), "a new file is indexed")
    (root / "src/ledger.py").rename(root / "src/books.py")
    wait_until(watching.has("src/books.py"), "a renamed file is indexed under its new name")
    wait_until(watching.lacks("src/ledger.py"), "its old name leaves the index")
    (root / "src/books.py").unlink()
    wait_until(watching.lacks("src/books.py"), "a deleted file leaves the index")
    assert not any(batch.rewalk for batch in watching.batches)  # file by file, no re-walk


def test_ignored_secret_and_vcs_files_never_enter(watching: Watching) -> None:
    root = watching.root
    (root / ".gitignore").write_text("build/\n")
    wait_until(lambda: bool(watching.batches), "the .gitignore change is seen")
    (root / "build").mkdir()
    (root / "build/generated.py").write_text("def generated(): pass\n")
    (root / ".env").write_text("API_TOKEN=tripwire-watch-7f3a\n")
    (root / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n")
    (root / ".git").mkdir()
    (root / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (root / "src/link.py").symlink_to(root / "src/retry.py")
    # Written last: once it is indexed, the files above have been judged.
    (root / "notes/sentinel.txt").write_text("The watcher has seen everything before me.\n")
    wait_until(watching.has("notes/sentinel.txt"), "the sentinel is indexed")
    paths = watching.paths()
    for never in ("build/generated.py", ".env", "id_rsa", ".git/HEAD", "src/link.py"):
        assert never not in paths, never
    conn = store.connect(index_path(watching.settings))
    try:
        leaked = conn.execute(
            "SELECT count(*) FROM chunks WHERE content LIKE '%tripwire-watch-7f3a%'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert leaked == 0


def test_directories_moved_and_removed_and_files_that_vanish(watching: Watching) -> None:
    root = watching.root
    (root / "pkg/sub").mkdir(parents=True)
    (root / "pkg/a.py").write_text("def alpha(): pass\n")
    (root / "pkg/sub/b.py").write_text("def beta(): pass\n")
    wait_until(watching.has("pkg/sub/b.py"), "a new directory's files are indexed")
    (root / "pkg").rename(root / "lib")
    wait_until(watching.has("lib/sub/b.py"), "a moved directory's files are indexed anew")
    wait_until(watching.lacks("pkg/a.py"), "and leave under their old directory")
    # A file that appears and vanishes within one burst, and a directory removed whole.
    (root / "lib/tmp.py").write_text("x = 1\n")
    (root / "lib/tmp.py").unlink()
    shutil.rmtree(root / "lib")
    wait_until(lambda: not any(p.startswith("lib/") for p in watching.paths()), "all gone")
    # The watch survived all of it.
    (root / "after.txt").write_text("still watching\n")
    wait_until(watching.has("after.txt"), "a later change is still indexed")


def test_a_storm_of_writes_is_coalesced(watching: Watching) -> None:
    root = watching.root / "storm"
    root.mkdir()
    for i in range(200):
        (root / f"f{i:03}.txt").write_text(f"storm file number {i}\n")
    wait_until(lambda: sum(p.startswith("storm/") for p in watching.paths()) == 200, "200 files")
    # Bounded work: a handful of batches, not one update per file.
    assert len(watching.batches) < 50


def test_an_edited_file_reembeds_only_its_changed_chunk(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    index_dir(settings, embedder, corpus)
    with start_watching(settings, embedder, corpus, polling=False, embed=True) as watching:
        retry = corpus / "src/retry.py"
        retry.write_text(retry.read_text().replace("self.spent += 1", "self.spent += 2"))
        wait_until(lambda: any(r.files_indexed for r in watching.reports), "the edit")
        edit = next(r for r in watching.reports if r.files_indexed)
        assert edit.files_indexed == 1
        assert edit.chunks_embedded == 1  # only the RetryBudget class changed


@pytest.mark.anyio
async def test_the_service_indexes_a_saved_file_with_knowledge_watch(
    api_for: ApiFactory, tmp_path: Path, embedder: Embedder, corpus: Path
) -> None:
    settings = load_settings(
        home=tmp_path / "home", knowledge={"roots": [str(corpus)], "watch": True}
    )
    index_dir(settings, embedder, corpus)
    async with api_for(settings) as (_resources, client):
        # The watcher installs itself on a thread: a first file tells us it is running.
        probe = corpus / "notes/probe.txt"
        body = {"query": "zeppelin hangar", "mode": "lexical"}
        deadline = time.monotonic() + WAIT_SECONDS
        found: list[dict[str, object]] = []
        while not found and time.monotonic() < deadline:
            probe.write_text(f"The zeppelin hangar opens at dawn {time.monotonic()}.\n")
            await asyncio.sleep(0.5)
            found = (await client.post("/api/scry", json=body)).json()["results"]
        assert found
        assert found[0]["path"] == "notes/probe.txt"
        # Its vector follows from the background pass.
        deadline = time.monotonic() + WAIT_SECONDS
        status = (await client.get("/api/index/status")).json()
        while status["semantic_coverage"] < 1.0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status = (await client.get("/api/index/status")).json()
        assert status["semantic_coverage"] == 1.0
