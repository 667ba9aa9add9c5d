"""Index a directory (and optionally its git history) into the store, incrementally.

Two phases. First the files are chunked and their chunks committed, a group at a time,
with no model involved: BM25 and the ranking stage answer over them at once. Then the
embedding pass (embedding_pass.py) gives the new chunks their vectors; `index(embed=False)`
leaves that to someone else (the service's background pass, or the next run).

A file whose content hash is unchanged is not read further and embeds nothing; a changed
file reuses the vectors of its chunks whose text did not change; a file that is gone (or now
ignored, binary or too large) leaves the index. Embedding happens outside write
transactions, so readers and the service are never held up by the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from service.cancel import Cancel
from service.knowledge import store
from service.knowledge.chunking import Chunk, ChunkLimits, chunk_document, fit_spans
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import TextEmbedder
from service.knowledge.embedding_pass import embed_pending
from service.knowledge.lexical import chunk_terms
from service.knowledge.secret_files import SecretFileRules
from service.knowledge.walker import Skipped, Tree, inodes_of, is_binary

log = logging.getLogger("patina.knowledge")

# Progress callback: (stage, done, total). Stages: "files", "commits", "vectors".
Progress = Callable[[str, int, int], None]
MAX_REPORTED_SECRET_FILES = 1000  # beyond this the report counts them in a note
# Chunks committed together: readers see a large tree fill in group by group.
WRITE_GROUP = 512


@dataclass
class IndexReport:
    """What one indexing run did."""

    repo: str
    root: str
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_skipped: int = 0
    files_deleted: int = 0
    chunks_written: int = 0
    chunks_embedded: int = 0
    commits_indexed: int = 0
    seconds: float = 0.0
    # When the chunks were committed (lexical search ready), seconds after the start.
    lexical_seconds: float = 0.0
    # Chunks left without a vector when the run ended (embedded later, in the background).
    chunks_unembedded: int = 0
    notes: list[str] = field(default_factory=list)
    # Left out as secret-bearing (paths only; `dir/` for the service's own directories).
    secret_files: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    """A changed document waiting for its vectors."""

    path: str
    kind: str
    content_hash: str
    timestamp: str
    chunks: list[Chunk]
    source_id: str | None = None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str | None:
    """The text of a UTF-8 text file's bytes, else None (binary or another encoding)."""
    if is_binary(data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Indexer:
    """Writes one root's files (and git history) into the index behind `conn`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        embedder: TextEmbedder | None,
        settings: KnowledgeSettings,
        *,
        progress: Progress | None = None,
        service_paths: Iterable[Path] = (),
    ) -> None:
        """`service_paths`: the service's own directories and files (secret_files.py),
        never indexed even when they lie inside a root. Without an `embedder` only the
        first phase runs (`embed=False`): no model is loaded for it."""
        self.conn = conn
        self.embedder = embedder
        self.settings = settings
        self.secret_rules = SecretFileRules.from_settings(settings)
        self.excluded = inodes_of(service_paths)
        self.limits = ChunkLimits(
            max_chars=settings.max_chunk_chars,
            window_lines=settings.window_lines,
            overlap=settings.window_overlap,
        )
        self._progress = progress or (lambda stage, done, total: None)

    def index(
        self,
        root: Path,
        *,
        repo: str | None = None,
        git: bool = False,
        cancel: Cancel | None = None,
        embed: bool = True,
    ) -> IndexReport:
        """Bring the index up to date with `root` (a directory): chunks first, then (with
        `embed`) the vectors of every chunk that has none."""
        started = time.perf_counter()
        root = root.resolve()
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is not a directory")
        report = IndexReport(repo=repo or root.name, root=str(root))
        self._index_files(root, report, cancel)
        if git:
            self._index_commits(root, report, cancel)
        report.lexical_seconds = time.perf_counter() - started
        if embed:
            report.chunks_embedded += self._embed(cancel)
        else:
            report.chunks_unembedded = store.unembedded_count(self.conn)
        report.seconds = time.perf_counter() - started
        return report

    # Files ------------------------------------------------------------------------------

    def update(
        self,
        root: Path,
        paths: Iterable[str],
        *,
        repo: str | None = None,
        cancel: Cancel | None = None,
        embed: bool = True,
    ) -> IndexReport:
        """Bring the index up to date with just `paths` (relative to `root`), as a full
        run would: a path the listing would skip now (gone, ignored, a symlink, secret-
        bearing) leaves the index, a changed file is re-chunked, an unchanged one is left.
        What the watcher calls for the files a change touched."""
        started = time.perf_counter()
        root = root.resolve()
        report = IndexReport(repo=repo or root.name, root=str(root))
        self._index_files(root, report, cancel, only=set(paths))
        report.lexical_seconds = time.perf_counter() - started
        if embed:
            report.chunks_embedded += self._embed(cancel)
        report.seconds = time.perf_counter() - started
        return report

    def _embed(self, cancel: Cancel | None) -> int:
        if self.embedder is None:
            raise ValueError("embedding needs an embedder: this indexer was made without one")
        return embed_pending(self.conn, self.embedder, cancel=cancel, progress=self._progress)

    def _index_files(
        self,
        root: Path,
        report: IndexReport,
        cancel: Cancel | None,
        *,
        only: set[str] | None = None,
    ) -> None:
        # With `only`, a path that was a directory (moved or deleted) stands for the files
        # indexed under it.
        under = tuple(f"{p}/" for p in only or ())
        known = {
            path: (doc_id, digest)
            for doc_id, path, digest in self.conn.execute(
                "SELECT id, path, content_hash FROM documents "
                "WHERE repo = ? AND root = ? AND kind != 'commit'",
                (report.repo, report.root),
            )
            if only is None or path in only or path.startswith(under)
        }
        if only is not None:
            only = only | known.keys()
        with Tree(root, excluded=self.excluded) as tree:
            if only is None:
                files = list(tree.files())
            else:
                files = [rel for rel in sorted(only) if tree.listed(rel)]
            for rel in tree.excluded_seen:
                _left_out(report, rel)
            # Files are read later, through the tree's directory descriptors: whatever is
            # swapped in between (a directory turned symlink) is skipped, never followed.
            self._progress("files", 0, len(files))
            seen: set[str] = set()
            pending: list[_Pending] = []
            for done, rel in enumerate(files, 1):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                report.files_seen += 1
                document = self._read(tree, rel, report)
                if document is not None:
                    seen.add(rel)
                    data, text, mtime = document
                    digest = sha256_hex(data)
                    if rel in known and known[rel][1] == digest:
                        report.files_unchanged += 1
                    else:
                        chunks = chunk_document(rel, text, self.limits)
                        kind = chunks[0].kind if chunks else "text"
                        pending.append(_Pending(rel, kind, digest, _iso(mtime), chunks))
                        report.files_indexed += 1
                if sum(len(p.chunks) for p in pending) >= WRITE_GROUP:
                    self._flush(pending, report, cancel)
                    pending = []
                self._progress("files", done, len(files))
        self._flush(pending, report, cancel)
        # A file gone, now ignored, unreadable or secret-bearing leaves the index.
        gone = [doc_id for path, (doc_id, _d) in known.items() if path not in seen]
        if gone:
            with store.transaction(self.conn):
                self.conn.executemany("DELETE FROM documents WHERE id = ?", [(g,) for g in gone])
                store.bump_generation(self.conn)
            report.files_deleted = len(gone)

    def _read(self, tree: Tree, rel: str, report: IndexReport) -> tuple[bytes, str, float] | None:
        """(bytes, text, mtime) of a file to index, or None when it is skipped: vanished or
        swapped mid-run, not a regular UTF-8 text file, too large, or secret-bearing."""
        if self.secret_rules.secret_by_name(rel):
            _left_out(report, rel)
            return None
        try:
            read = tree.read(rel, max_bytes=self.settings.max_file_bytes)
        except Skipped:
            report.files_skipped += 1
            return None
        if self.secret_rules.secret_by_content(rel, read.data):
            _left_out(report, rel)
            return None
        text = decode_text(read.data)
        if text is None:
            report.files_skipped += 1
            return None
        return read.data, text, read.mtime

    # Git --------------------------------------------------------------------------------

    def _index_commits(self, root: Path, report: IndexReport, cancel: Cancel | None) -> None:
        known = {
            row[0]
            for row in self.conn.execute(
                "SELECT path FROM documents WHERE repo = ? AND root = ? AND kind = 'commit'",
                (report.repo, report.root),
            )
        }
        try:
            commits = list(read_commits(root, self.settings.max_commits))
        except GitError as exc:
            report.notes.append(str(exc))
            return
        new = [c for c in commits if c.sha not in known]
        self._progress("commits", 0, len(new))
        pending: list[_Pending] = []
        for done, commit in enumerate(new, 1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            text = commit.text()
            lines = text.splitlines()
            chunks = [
                Chunk("commit", "git.commit", s + 1, e, "\n".join(lines[s:e]).strip(), "commit")
                for s, e in _commit_spans(lines, self.limits)
            ]
            pending.append(
                _Pending(commit.sha, "commit", commit.sha, commit.date, chunks, commit.sha)
            )
            if sum(len(p.chunks) for p in pending) >= WRITE_GROUP:
                self._flush(pending, report, cancel)
                pending = []
            self._progress("commits", done, len(new))
        self._flush(pending, report, cancel)
        report.commits_indexed = len(new)

    # Writing ----------------------------------------------------------------------------

    def _flush(self, pending: list[_Pending], report: IndexReport, cancel: Cancel | None) -> None:
        """Commit `pending` documents and their chunks; a chunk whose text the previous
        version of its file had keeps that vector, the others wait for the embedding pass."""
        if not pending:
            return
        if cancel is not None:
            cancel.raise_if_cancelled()
        reusable = self._old_vectors(report, pending)
        now = time.time()
        with store.transaction(self.conn):
            for doc in pending:
                self.conn.execute(
                    "DELETE FROM documents WHERE repo = ? AND root = ? AND path = ?",
                    (report.repo, report.root, doc.path),
                )
                cur = self.conn.execute(
                    "INSERT INTO documents(repo, root, path, kind, content_hash, timestamp, "
                    "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (report.repo, report.root, doc.path, doc.kind, doc.content_hash,
                     doc.timestamp, now),
                )  # fmt: skip
                doc_id = cur.lastrowid
                for chunk in doc.chunks:
                    text_hash = _text_hash(chunk.text)
                    terms = chunk_terms(doc.path, chunk.text, chunk.symbols)
                    cur = self.conn.execute(
                        "INSERT INTO chunks(document_id, repo, path, kind, event_type, "
                        "source_id, timestamp, start_line, end_line, content, text_hash, "
                        "role, symbols, terms, symbol_terms, name_terms, path_terms) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (doc_id, report.repo, doc.path, chunk.kind, chunk.event_type,
                         doc.source_id or doc.path, doc.timestamp, chunk.start_line,
                         chunk.end_line, chunk.text, text_hash, chunk.role,
                         " ".join(chunk.symbols), terms.terms, terms.symbol_terms,
                         terms.name_terms, terms.path_terms),
                    )  # fmt: skip
                    if text_hash in reusable:
                        self.conn.execute(
                            "INSERT INTO vectors(chunk_id, vector) VALUES (?, ?)",
                            (cur.lastrowid, reusable[text_hash]),
                        )
                    report.chunks_written += 1
            store.bump_generation(self.conn)

    def _old_vectors(self, report: IndexReport, pending: list[_Pending]) -> dict[str, bytes]:
        """Vectors (stored form) of the previous version of changed documents, by chunk
        text hash."""
        out: dict[str, bytes] = {}
        for doc in pending:
            rows = self.conn.execute(
                "SELECT c.text_hash, v.vector FROM documents d JOIN chunks c "
                "ON c.document_id = d.id JOIN vectors v ON v.chunk_id = c.id "
                "WHERE d.repo = ? AND d.root = ? AND d.path = ?",
                (report.repo, report.root, doc.path),
            )
            for text_hash, blob in rows:
                out[text_hash] = bytes(blob)
        return out


def _left_out(report: IndexReport, rel: str) -> None:
    """Report `rel` as left out for holding secrets (by path; its content is never read
    into the report)."""
    if len(report.secret_files) < MAX_REPORTED_SECRET_FILES:
        report.secret_files.append(rel)
        return
    more = "more secret-bearing files left out"
    if report.notes and report.notes[-1].endswith(more):
        count = int(report.notes[-1].split(" ", 1)[0]) + 1
        report.notes[-1] = f"{count} {more}"
    else:
        report.notes.append(f"1 {more}")


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _commit_spans(lines: list[str], limits: ChunkLimits) -> list[tuple[int, int]]:
    return [(s, e) for s, e in fit_spans(lines, 0, len(lines), limits) if e > s]


class GitError(Exception):
    """git is missing, failed, or the directory is not a repository."""


@dataclass(frozen=True)
class Commit:
    sha: str
    date: str
    author: str
    message: str
    files: tuple[str, ...]

    def text(self) -> str:
        """What is indexed: the full message, then the changed files."""
        body = self.message.strip()
        if self.files:
            body += "\n\nChanged files:\n" + "\n".join(self.files)
        return body


def read_commits(root: Path, max_commits: int) -> Iterator[Commit]:
    """The newest `max_commits` commits of the repository at `root`, newest first."""
    if max_commits <= 0:
        return
    cmd = [
        "git", "-C", str(root), "-c", "core.quotepath=off", "log", f"--max-count={max_commits}",
        "--no-color", "--no-renames", "--name-only", "--format=%x1e%H%x00%aI%x00%an%x00%B%x00",
    ]  # fmt: skip
    env = {**os.environ, "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        out = subprocess.run(cmd, capture_output=True, env=env, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git log failed in {root}: {exc}") from None
    if out.returncode != 0:
        detail = out.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise GitError(f"git log failed in {root}: {' '.join(detail) or out.returncode}")
    for record in out.stdout.decode("utf-8", "replace").split("\x1e"):
        if not record.strip():
            continue
        parts = record.split("\x00")
        if len(parts) < 5:
            continue
        sha, date, author, message, rest = parts[0], parts[1], parts[2], parts[3], parts[4]
        files = tuple(line for line in rest.splitlines() if line.strip())
        yield Commit(sha.strip(), date, author, message, files)
