"""Indexing while someone who can write into the project swaps parts of it: between the
listing and the reading (the progress callback runs exactly there), a directory becomes a
symlink out of the root, a file becomes a FIFO, a file vanishes. Nothing outside the root
is read, nothing blocks, and the run succeeds with those files skipped."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from service.knowledge import store
from service.knowledge.embedder import Embedder
from service.knowledge.indexer import Indexer, IndexReport
from service.knowledge.service import index_path
from service.knowledge.walker import Skipped, Tree, inodes_of, iter_files
from service.settings import Settings, load_settings

from .conftest import write_corpus

OUTSIDE = "tripwire-outside-the-root-5e1f"
FILES = {
    "docs/a.md": "# Alpha\n\nThe alpha document inside the root.\n",
    "docs/b.md": "# Beta\n\nThe beta document inside the root.\n",
    "src/main.py": "def main() -> None:\n    print('inside')\n",
}
Swap = Callable[[], None]


def _index_with_swap(
    tmp_path: Path, embedder: Embedder, swap: Swap, root: Path
) -> tuple[IndexReport, Settings]:
    settings = load_settings(home=tmp_path / "home", knowledge={"roots": [str(root)]})
    swapped = []

    def between_listing_and_reading(stage: str, done: int, total: int) -> None:
        if stage == "files" and done == 0 and not swapped:
            swap()
            swapped.append(True)

    conn = store.open_index(index_path(settings))
    try:
        indexer = Indexer(conn, embedder, settings.knowledge, progress=between_listing_and_reading)
        report = indexer.index(root)
    finally:
        conn.close()
    assert swapped
    return report, settings


def _stored(settings: Settings) -> bytes:
    path = index_path(settings)
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "owner-private"
    outside.mkdir()
    # Same names as the listed files, so a reader following the symlink would find them.
    (outside / "a.md").write_text(f"# Owner\n\n{OUTSIDE} age identity\n")
    (outside / "b.md").write_text(f"# Owner\n\n{OUTSIDE} ssh key\n")
    return outside


def test_a_directory_flipped_to_a_symlink_after_listing_is_not_followed(
    tmp_path: Path, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "proj", FILES)
    outside = _outside(tmp_path)

    def flip() -> None:
        (root / "docs").rename(root / "docs.old")
        (root / "docs").symlink_to(outside, target_is_directory=True)

    report, settings = _index_with_swap(tmp_path, embedder, flip, root)
    assert OUTSIDE.encode() not in _stored(settings)
    assert report.files_seen == 3
    assert report.files_skipped == 2
    assert report.files_indexed == 1


@pytest.mark.timeout(120)
def test_a_file_swapped_for_a_fifo_is_skipped_not_waited_on(
    tmp_path: Path, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "proj", FILES)

    def to_fifo() -> None:
        (root / "src/main.py").unlink()
        os.mkfifo(root / "src/main.py")

    report, _settings = _index_with_swap(tmp_path, embedder, to_fifo, root)
    assert report.files_skipped == 1
    assert report.files_indexed == 2


def test_a_file_that_vanishes_mid_run_is_skipped_and_the_run_succeeds(
    tmp_path: Path, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "proj", FILES)

    def vanish() -> None:
        (root / "docs/b.md").unlink()
        (root / "src/main.py").unlink()
        (root / "src").rmdir()

    report, settings = _index_with_swap(tmp_path, embedder, vanish, root)
    assert report.files_skipped == 2
    assert report.files_indexed == 1
    assert b"beta document" not in _stored(settings)


def test_a_file_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "proj", FILES)
    outside = _outside(tmp_path)
    with Tree(root) as tree:
        listed = list(tree.files())
        (root / "docs/a.md").unlink()
        (root / "docs/a.md").symlink_to(outside / "a.md")
        with pytest.raises(Skipped, match="vanished or swapped"):
            tree.read("docs/a.md", max_bytes=1 << 20)
        assert b"beta" in tree.read("docs/b.md", max_bytes=1 << 20).data
    assert listed == sorted(FILES)


def test_excluded_directories_and_files_are_left_out_by_inode(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "proj", {**FILES, "state/run/serve.token": "pt_x"})
    # Another path to the same directory (a bind mount, a symlinked home) changes nothing.
    alias = tmp_path / "alias"
    alias.symlink_to(root / "state", target_is_directory=True)
    excluded = inodes_of([alias, root / "src/main.py"])
    with Tree(root, excluded=excluded) as tree:
        listed = list(tree.files())
        seen = tree.excluded_seen
    assert listed == ["docs/a.md", "docs/b.md"]
    assert seen == ["src/main.py", "state/"]
    assert iter_files(root, excluded=excluded) == listed


def test_listed_judges_one_path_exactly_as_the_listing_does(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "root", FILES)
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "src/.gitignore").write_text("generated_*.py\n!generated_keep.py\n")
    for rel in ("build/out.py", "app.log", "src/generated_x.py", "src/generated_keep.py",
                ".git/config", "deep/er/still.txt"):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")
    (root / "src/link.py").symlink_to(root / "src/main.py")
    (root / "linked").symlink_to(root / "docs")
    os.mkfifo(root / "pipe")
    outside = write_corpus(tmp_path / "outside", {"o.txt": OUTSIDE})
    every = {p.relative_to(root).as_posix() for p in root.rglob("*")}
    every |= {"linked/a.md", "missing.txt", "docs/../src/main.py", "o.txt"}
    with Tree(root, excluded=inodes_of([root / "deep"])) as tree:
        listed = set(tree.files())
        assert {rel for rel in every if tree.listed(rel)} == listed
    assert "src/generated_keep.py" in listed
    assert "deep/er/still.txt" not in listed
    assert outside.exists()
