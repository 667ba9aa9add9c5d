"""The index: one SQLite file in WAL mode with documents, chunks, an FTS5 table and vectors.

Writers (the CLI's indexer, the service's own) bump a generation counter in the same
transaction as their changes; a reader that sees a new generation reloads its in-memory
vector matrix, so a running service picks up an index written by another process without
a restart. The schema carries a version (`PRAGMA user_version`) and upgrades itself through
the numbered migrations below; an index newer than this code is refused, never guessed at.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.cancel import Cancel, Cancelled
from service.knowledge import vector_scan
from service.knowledge.conventions import file_role
from service.knowledge.lexical import FTS_TOKENIZER, chunk_terms
from service.knowledge.model import DIMENSIONS
from service.knowledge.vector_scan import Int8Vectors, quantize

log = logging.getLogger("patina.knowledge")


class StoreError(Exception):
    """The index cannot be opened or used (message names the file)."""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the migration's transaction first: run statement by
    # statement instead, so a migration and its version bump commit together or not at all.
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise StoreError(f"incomplete migration statement: {statement.strip()[:60]}")


def _migration_1(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('generation', '0');
        CREATE TABLE documents(
            id INTEGER PRIMARY KEY,
            repo TEXT NOT NULL,
            root TEXT NOT NULL,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            indexed_at REAL NOT NULL,
            UNIQUE(repo, root, path)
        );
        CREATE TABLE chunks(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            repo TEXT NOT NULL,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,
            event_type TEXT NOT NULL,
            source_id TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            start_line INTEGER NOT NULL,
            end_line INTEGER NOT NULL,
            content TEXT NOT NULL,
            text_hash TEXT NOT NULL
        );
        CREATE INDEX chunks_document ON chunks(document_id);
        CREATE TABLE vectors(
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            vector BLOB NOT NULL
        );
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            content, path, content='chunks', content_rowid='id', tokenize='porter unicode61'
        );
        INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25(1.0, 0.5)');
        CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, content, path) VALUES (new.id, new.content, new.path);
        END;
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, content, path)
            VALUES ('delete', old.id, old.content, old.path);
        END;
        """,
    )


def _migration_2(conn: sqlite3.Connection) -> None:
    """Code-aware search: each chunk's role and defined symbols, and a full-text index fed
    pre-tokenized fields (identifiers split; file name, directories and symbols weighted
    apart). Existing chunks are re-tokenized here so search works at once; their files are
    marked changed so the next `patina index` re-chunks them by definition."""
    _run_script(
        conn,
        f"""
        DROP TRIGGER chunks_ai;
        DROP TRIGGER chunks_ad;
        DROP TABLE chunks_vocab;
        DROP TABLE chunks_fts;
        ALTER TABLE chunks ADD COLUMN role TEXT NOT NULL DEFAULT 'code';
        ALTER TABLE chunks ADD COLUMN symbols TEXT NOT NULL DEFAULT '';
        ALTER TABLE chunks ADD COLUMN terms TEXT NOT NULL DEFAULT '';
        ALTER TABLE chunks ADD COLUMN symbol_terms TEXT NOT NULL DEFAULT '';
        ALTER TABLE chunks ADD COLUMN name_terms TEXT NOT NULL DEFAULT '';
        ALTER TABLE chunks ADD COLUMN path_terms TEXT NOT NULL DEFAULT '';
        CREATE VIRTUAL TABLE code_fts USING fts5(
            terms, symbol_terms, name_terms, path_terms,
            content='chunks', content_rowid='id', tokenize='{FTS_TOKENIZER}'
        );
        CREATE VIRTUAL TABLE code_vocab USING fts5vocab(code_fts, 'row');
        """,
    )
    rows = conn.execute("SELECT id, path, kind, content FROM chunks").fetchall()
    for chunk_id, path, kind, content in rows:
        terms = chunk_terms(path, content, ())
        role = "commit" if kind == "commit" else file_role(path) or _ROLE_OF_KIND.get(kind, "code")
        conn.execute(
            "UPDATE chunks SET role = ?, terms = ?, symbol_terms = ?, name_terms = ?, "
            "path_terms = ? WHERE id = ?",
            (role, terms.terms, terms.symbol_terms, terms.name_terms, terms.path_terms,
             chunk_id),
        )  # fmt: skip
    _run_script(
        conn,
        """
        INSERT INTO code_fts(code_fts) VALUES ('rebuild');
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO code_fts(rowid, terms, symbol_terms, name_terms, path_terms)
            VALUES (new.id, new.terms, new.symbol_terms, new.name_terms, new.path_terms);
        END;
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO code_fts(code_fts, rowid, terms, symbol_terms, name_terms, path_terms)
            VALUES ('delete', old.id, old.terms, old.symbol_terms, old.name_terms,
                    old.path_terms);
        END;
        UPDATE documents SET content_hash = '' WHERE kind != 'commit';
        """,
    )
    if rows:
        log.warning(
            "index upgraded to schema 2 (code-aware search): %d chunks re-tokenized; "
            "run `patina index` again to re-chunk the files by definition",
            len(rows),
        )


_ROLE_OF_KIND = {"markdown": "docs", "text": "text", "code": "code"}

# Index i upgrades a database from user_version i to i + 1. Append, never edit.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migration_1, _migration_2)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the pragmas every user of the index needs."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION, or refuse an index written by newer code."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: index schema version {version} is newer than this service's "
            f"({SCHEMA_VERSION}); upgrade patina-serve or re-index into a new file"
        )
    for step in range(version, SCHEMA_VERSION):
        with transaction(conn):
            MIGRATIONS[step](conn)
            conn.execute(f"PRAGMA user_version={step + 1}")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one writer at a time, no upgrades."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_index(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the index at `path` and migrate it; returns a connection."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        conn = connect(path)
        migrate(conn, path)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the index: {exc}") from None
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)
    return conn


def generation(conn: sqlite3.Connection) -> int:
    """The index's change counter: any committed write moves it on."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return int(row[0])


def bump_generation(conn: sqlite3.Connection) -> None:
    """Call inside a write transaction that changed anything readers see."""
    conn.execute(
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'"
    )


def vector_blob(vector: npt.NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


@dataclass(frozen=True)
class VectorSnapshot:
    """Every chunk's vector in one float32 matrix, plus what filters need, for one
    generation of the index."""

    generation: int
    ids: npt.NDArray[np.int64]
    matrix: npt.NDArray[np.float32]
    repo_codes: npt.NDArray[np.int32]
    kind_codes: npt.NDArray[np.int32]
    paths: list[str]
    # Each row's role and defined symbols (space-separated, as stored): ranking reads them
    # for the semantic hits without a query to the database after the scan.
    roles: list[str]
    symbols: list[str]
    repos: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    # Chunks in the index at this generation, with or without a vector yet: chunks are
    # committed (and searchable by BM25) before the embedding pass gives them vectors.
    chunks: int = 0
    # The matrix in int8 for the cosine scan's first pass (vector_scan.py); None where the
    # compiled scan is not built.
    int8: Int8Vectors | None = None

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    @property
    def semantic_coverage(self) -> float:
        """The share of chunks that have a vector (1.0 for an empty index)."""
        return 1.0 if self.chunks <= 0 else min(1.0, self.size / self.chunks)

    def mask(
        self, *, repo: str | None, kind: str | None, path_prefix: str | None
    ) -> npt.NDArray[np.bool_] | None:
        """Rows passing the filters, or None when there is no filter."""
        if repo is None and kind is None and not path_prefix:
            return None
        keep = np.ones(self.size, dtype=bool)
        if repo is not None:
            keep &= self.repo_codes == self.repos.get(repo, -1)
        if kind is not None:
            keep &= self.kind_codes == self.kinds.get(kind, -1)
        if path_prefix:
            keep &= np.fromiter(
                (p.startswith(path_prefix) for p in self.paths), dtype=bool, count=self.size
            )
        return keep

    def rows_of(self, ids: Sequence[int]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """Each chunk's row and whether it has one (a chunk with no vector yet has none;
        its row is then some other chunk's and must not be read)."""
        wanted = np.asarray(ids, dtype=np.int64)
        if not self.size:
            return np.zeros(len(wanted), dtype=np.intp), np.zeros(len(wanted), dtype=bool)
        rows = np.minimum(np.searchsorted(self.ids, wanted), self.size - 1)
        return rows, self.ids[rows] == wanted

    def meta(self, ids: list[int]) -> dict[int, ChunkMeta]:
        """(path, role, symbols) of the chunks `ids` that have a row here, as `chunk_meta`
        reads them from the database."""
        rows, found = self.rows_of(ids)
        return {
            chunk_id: (self.paths[row], self.roles[row], tuple(self.symbols[row].split()))
            for chunk_id, row, ok in zip(ids, rows.tolist(), found.tolist(), strict=True)
            if ok
        }


def load_snapshot(conn: sqlite3.Connection, cancel: Cancel | None = None) -> VectorSnapshot:
    """Read every vector of the index into memory (one read transaction, consistent)."""
    conn.execute("BEGIN")
    try:
        gen = generation(conn)
        count = conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        chunk_total = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        ids = np.empty(count, dtype=np.int64)
        matrix = np.empty((count, DIMENSIONS), dtype=np.float32)
        repo_codes = np.empty(count, dtype=np.int32)
        kind_codes = np.empty(count, dtype=np.int32)
        paths: list[str] = []
        roles: list[str] = []
        symbols: list[str] = []
        repos: dict[str, int] = {}
        kinds: dict[str, int] = {}
        rows = conn.execute(
            "SELECT c.id, c.repo, c.kind, c.path, c.role, c.symbols, v.vector FROM chunks c "
            "JOIN vectors v ON v.chunk_id = c.id ORDER BY c.id"
        )
        i = 0
        for chunk_id, repo, kind, path, role, defines, blob in rows:
            if i >= count:
                break
            if cancel is not None and i % 4096 == 0:
                cancel.raise_if_cancelled()
            ids[i] = chunk_id
            matrix[i] = np.frombuffer(blob, dtype=np.float32)
            repo_codes[i] = repos.setdefault(repo, len(repos))
            kind_codes[i] = kinds.setdefault(kind, len(kinds))
            paths.append(path)
            roles.append(sys.intern(role))
            symbols.append(defines)
            i += 1
    finally:
        conn.execute("COMMIT")
    return VectorSnapshot(
        generation=gen,
        ids=ids[:i],
        matrix=matrix[:i],
        int8=quantize(matrix[:i]) if vector_scan.kernel is not None else None,
        repo_codes=repo_codes[:i],
        kind_codes=kind_codes[:i],
        paths=paths,
        roles=roles,
        symbols=symbols,
        repos=repos,
        kinds=kinds,
        chunks=int(chunk_total),
    )


class ReadPool:
    """Read connections for query threads. Each query borrows its own, so a deadline's
    `interrupt` stops exactly that query's statement and no other.

    At rest the pool holds exactly `size` connections, opened up front: a connection a
    deadline interrupted is closed (a late interrupt could still hit it) and replaced at
    once, so the process's open files do not drift with the history of timeouts. A borrow
    beyond `size` (not expected: the query gate admits fewer) gets a connection that is
    closed when it is returned."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self._size = max(1, size)
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._held = 0  # pooled connections, idle or borrowed
        self._closed = False
        for _ in range(self._size):
            self._idle.put(connect(path))
            self._held += 1

    @contextlib.contextmanager
    def borrow(self, cancel: Cancel | None = None) -> Iterator[sqlite3.Connection]:
        """A connection whose running statement is interrupted when `cancel` fires;
        an interrupted statement surfaces as Cancelled."""
        conn, pooled = self._take()
        unregister: Callable[[], None] = lambda: None  # noqa: E731
        if cancel is not None:
            unregister = cancel.on_cancel(lambda: _interrupt(conn))
        try:
            yield conn
        except sqlite3.OperationalError as exc:
            if cancel is not None and cancel.cancelled:
                raise Cancelled() from None
            raise StoreError(f"{self.path}: {exc}") from None
        finally:
            unregister()
            interrupted = cancel is not None and cancel.cancelled
            self._give_back(conn, pooled=pooled, interrupted=interrupted)

    def _take(self) -> tuple[sqlite3.Connection, bool]:
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            pass
        with self._lock:
            # Refill a pool left short (a reopen that failed), else lend a spare.
            pooled = self._held < self._size and not self._closed
            if pooled:
                self._held += 1
        try:
            return connect(self.path), pooled
        except BaseException:
            if pooled:
                with self._lock:
                    self._held -= 1
            raise

    def _give_back(self, conn: sqlite3.Connection, *, pooled: bool, interrupted: bool) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        if pooled and not interrupted and not self._closed:
            self._idle.put(conn)
            return
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        if not pooled:
            return
        fresh = None
        if not self._closed:
            with contextlib.suppress(sqlite3.Error):
                fresh = connect(self.path)
        with self._lock:
            if fresh is not None and not self._closed:
                self._idle.put(fresh)
                return
            self._held -= 1
        if fresh is not None:
            fresh.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                break
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _interrupt(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.interrupt()


@dataclass(frozen=True)
class ChunkRow:
    """One stored chunk as search returns it."""

    id: int
    repo: str
    path: str
    kind: str
    event_type: str
    source_id: str
    timestamp: str
    start_line: int
    end_line: int
    content: str
    role: str = "code"
    symbols: tuple[str, ...] = ()


def fetch_chunks(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, ChunkRow]:
    """The rows of `ids` that still exist (a concurrent re-index may have removed some)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "SELECT id, repo, path, kind, event_type, source_id, timestamp, start_line, end_line, "
        f"content, role, symbols FROM chunks WHERE id IN ({marks})",
        list(ids),
    )
    return {
        row[0]: ChunkRow(
            id=row[0], repo=row[1], path=row[2], kind=row[3], event_type=row[4],
            source_id=row[5], timestamp=row[6], start_line=row[7], end_line=row[8],
            content=row[9], role=row[10], symbols=tuple(row[11].split()),
        )
        for row in rows
    }  # fmt: skip


ChunkMeta = tuple[str, str, tuple[str, ...]]  # path, role, symbols


def chunk_meta(conn: sqlite3.Connection, ids: set[int]) -> dict[int, ChunkMeta]:
    """(path, role, symbols) of the chunks `ids` that still exist: what ranking reads."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, path, role, symbols FROM chunks WHERE id IN ({marks})", sorted(ids)
    )
    return {row[0]: (row[1], row[2], tuple(row[3].split())) for row in rows}


def unembedded(conn: sqlite3.Connection, *, after: int, limit: int) -> list[tuple[int, str]]:
    """(id, content) of up to `limit` chunks with no vector yet whose id is above `after`,
    in id order (new chunks get higher ids, so a cursor over ids meets each chunk once)."""
    rows = conn.execute(
        "SELECT c.id, c.content FROM chunks c WHERE c.id > ? AND NOT EXISTS "
        "(SELECT 1 FROM vectors v WHERE v.chunk_id = c.id) ORDER BY c.id LIMIT ?",
        (after, limit),
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def unembedded_count(conn: sqlite3.Connection) -> int:
    """Chunks that have no vector yet."""
    row = conn.execute(
        "SELECT count(*) FROM chunks c WHERE NOT EXISTS "
        "(SELECT 1 FROM vectors v WHERE v.chunk_id = c.id)"
    ).fetchone()
    return int(row[0])


def add_vectors(conn: sqlite3.Connection, vectors: Sequence[tuple[int, bytes]]) -> None:
    """Store vectors of chunks, in one transaction. A chunk deleted meanwhile (its file
    changed or went) is skipped; one that already has a vector keeps it."""
    with transaction(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO vectors(chunk_id, vector) "
            "SELECT ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?)",
            [(chunk_id, blob, chunk_id) for chunk_id, blob in vectors],
        )
        bump_generation(conn)


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(documents, chunks) in the index."""
    docs = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    return int(docs), int(chunks)
