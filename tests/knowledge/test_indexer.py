"""Indexing: incremental by content hash, deletions, ignore rules, binaries, git history."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from service.knowledge import store
from service.knowledge.embedder import Embedder
from service.knowledge.service import index_path
from service.knowledge.walker import iter_files
from service.settings import Settings

from .conftest import CORPUS, index_dir


def count_embed_calls(embedder: Embedder) -> list[float]:
    calls: list[float] = []
    embedder.observers.append(calls.append)
    return calls


def paths_in_index(settings: Settings) -> set[str]:
    conn = store.open_index(index_path(settings))
    try:
        return {row[0] for row in conn.execute("SELECT DISTINCT path FROM chunks")}
    finally:
        conn.close()


def test_first_run_indexes_every_file(indexed: Settings) -> None:
    assert paths_in_index(indexed) == set(CORPUS)


def test_reindexing_an_unchanged_tree_embeds_nothing(
    indexed: Settings, embedder: Embedder, corpus: Path
) -> None:
    calls = count_embed_calls(embedder)
    try:
        report = index_dir(indexed, embedder, corpus)
    finally:
        embedder.observers.remove(calls.append)
    assert calls == []
    assert report.chunks_embedded == 0
    assert report.files_unchanged == len(CORPUS)
    assert report.files_indexed == 0


def test_a_changed_file_reembeds_only_its_changed_chunks(
    indexed: Settings, embedder: Embedder, corpus: Path
) -> None:
    retry = corpus / "src/retry.py"
    retry.write_text(retry.read_text().replace("self.spent += 1", "self.spent += 2"))
    report = index_dir(indexed, embedder, corpus)
    assert report.files_indexed == 1
    assert report.chunks_embedded == 1  # only the RetryBudget class changed


def test_a_deleted_file_leaves_the_index(
    indexed: Settings, embedder: Embedder, corpus: Path
) -> None:
    (corpus / "notes/office.txt").unlink()
    report = index_dir(indexed, embedder, corpus)
    assert report.files_deleted == 1
    assert "notes/office.txt" not in paths_in_index(indexed)
    conn = store.open_index(index_path(indexed))
    try:
        # Its FTS rows and vectors went with it.
        fts = conn.execute(
            "SELECT count(*) FROM code_fts WHERE code_fts MATCH 'espresso'"
        ).fetchone()[0]
        orphans = conn.execute(
            "SELECT count(*) FROM vectors WHERE chunk_id NOT IN (SELECT id FROM chunks)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert fts == 0
    assert orphans == 0


def test_gitignore_binaries_size_cap_and_symlinks_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "build").mkdir(parents=True)
    (root / "src/gen").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git/config").write_text("[core]\n")
    (root / ".gitignore").write_text("build/\n*.log\n!keep.log\n")
    (root / "src/.gitignore").write_text("gen/\n")
    (root / "build/out.txt").write_text("ignored")
    (root / "src/gen/x.py").write_text("ignored = 1")
    (root / "src/main.py").write_text("print('hi')")
    (root / "debug.log").write_text("ignored")
    (root / "keep.log").write_text("kept")
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the root")
    os.symlink(outside, root / "link.txt")
    os.symlink(tmp_path, root / "dirlink")
    (root / "inside_link.txt").symlink_to(root / "keep.log")
    files = set(iter_files(root))
    # Symlinks are never followed, whether they lead out of the root or stay inside it.
    assert files == {".gitignore", "src/.gitignore", "src/main.py", "keep.log"}


def test_binary_and_oversized_files_are_not_indexed(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "big.txt").write_text("large " * 400)
    (root / "small.txt").write_text("a small text file")
    settings.knowledge.max_file_bytes = 1000
    report = index_dir(settings, embedder, root)
    assert report.files_skipped == 3
    assert paths_in_index(settings) == {"small.txt"}


def git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.org",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.org",
    }
    out = subprocess.run(["git", "-C", str(root), *args], env=env, check=True, capture_output=True)
    return out.stdout.decode().strip()


def test_git_history_is_indexed_with_changed_files_once(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    git(corpus, "init", "-q")
    git(corpus, "add", "-A")
    git(corpus, "commit", "-q", "-m", "Initial shop\n\nAdds the retry helper and the docs.")
    (corpus / "src/retry.py").write_text("# retries are gone\n")
    git(corpus, "commit", "-q", "-am", "Remove jittered retries after the outage review")
    sha = git(corpus, "rev-parse", "HEAD")
    report = index_dir(settings, embedder, corpus, git=True)
    assert report.commits_indexed == 2
    conn = store.open_index(index_path(settings))
    try:
        row = conn.execute(
            "SELECT content, event_type, source_id, kind FROM chunks WHERE source_id = ?", (sha,)
        ).fetchone()
    finally:
        conn.close()
    content, event_type, source_id, kind = row
    assert "Remove jittered retries after the outage review" in content
    assert "src/retry.py" in content  # the changed files follow the message
    assert (event_type, source_id, kind) == ("git.commit", sha, "commit")
    again = index_dir(settings, embedder, corpus, git=True)
    assert again.commits_indexed == 0
    assert again.chunks_embedded == 0
