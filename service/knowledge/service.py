"""KnowledgeService: the running service's view of the index, its model and its indexer.

Opened once per process by `open_knowledge` (from the bootstrap), closed on shutdown. Queries
are blocking calls meant for `QueryRunner.run`; indexing runs on its own thread, one
run at a time, and never holds the query gate.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry

from service.cancel import Cancel, Cancelled
from service.errors import BadRequest, Conflict, Forbidden
from service.knowledge import store
from service.knowledge.background import BackgroundEmbedder, EmbeddingState
from service.knowledge.embedder import Embedder, TextEmbedder
from service.knowledge.embedding_pass import embed_pending
from service.knowledge.indexer import Indexer, IndexReport
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.query_vector import Vector, fingerprint
from service.knowledge.scry_models import Mode
from service.knowledge.search import MODES, Hit, Query, run_query
from service.knowledge.watch import Batch, never_indexed, update_index, watch_roots
from service.settings import Settings
from service.thread_pools import full_thread_pool

log = logging.getLogger("patina.knowledge")

IndexState = Literal["idle", "running", "succeeded", "failed", "cancelled"]
IndexPhase = Literal["files", "commits", "vectors"]
_PHASES: dict[str, IndexPhase] = {"files": "files", "commits": "commits", "vectors": "vectors"}
# While a background embedding pass runs, its vectors are loaded at most this often.
RELOAD_SECONDS = 5.0


def index_path(settings: Settings) -> Path:
    """Where the index lives: knowledge.index_path, else data_dir/index.sqlite."""
    return settings.knowledge.index_path or settings.resolved_data_dir / "index.sqlite"


def service_paths(settings: Settings) -> list[Path]:
    """The service's own directories and sensitive files: never indexed, even when a
    configured root contains them (the home holds the vault and its identity)."""
    files = [
        index_path(settings),
        settings.secrets.audit_file,
        settings.resolved_generated_token_file,
        settings.tokens_file,
        settings.tls_key,
        settings.secrets.consumers_file,
    ]
    dirs = [settings.home, settings.resolved_run_dir, settings.resolved_data_dir]
    return [path.expanduser() for path in [*dirs, *files] if path is not None]


@dataclass
class IndexRun:
    """The state of the current or last indexing run started through the service."""

    run_id: int = 0
    state: IndexState = "idle"
    paths: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    reports: list[IndexReport] = field(default_factory=list)
    error: str | None = None
    # While running: the phase (files, commits, then vectors) and how far it is.
    phase: IndexPhase | None = None
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class Readiness:
    """Which modes answer over the whole index, and the share of chunks with a vector.

    Lexical (BM25 plus ranking) is complete as soon as chunks are committed; hybrid and
    semantic are complete once every chunk has its vector. Asked before that, hybrid ranks
    a chunk without a vector by its BM25 alone and semantic searches the embedded share."""

    modes_available: tuple[Mode, ...]
    semantic_coverage: float


class KnowledgeService:
    """Search over the index at `index_path(settings)` plus indexing of configured roots."""

    def __init__(self, settings: Settings, *, embedder: TextEmbedder, metrics: KnowledgeMetrics):
        self.settings = settings.knowledge
        self.path = index_path(settings)
        self.service_paths = service_paths(settings)
        self.embedder = embedder
        self.metrics = metrics
        embedder.observers.append(metrics.embed_duration.observe)
        conn = store.open_index(self.path)
        try:
            self._snapshot = store.load_snapshot(conn)
            self._update_gauges(conn)
        finally:
            conn.close()
        self.pool = store.ReadPool(self.path, size=settings.max_concurrent_queries + 1)
        # One BM25 thread per admitted query: a hybrid query's BM25 search overlaps its
        # embedding and cosine scan (search.retrieve).
        self._query_bm25 = full_thread_pool(settings.max_concurrent_queries, "patina-query-bm25")
        self._reload_lock = threading.Lock()
        # Held by whoever embeds this index in this process, one pass at a time.
        self._embed_lock = threading.Lock()
        self.background = BackgroundEmbedder(
            self.path,
            embedder,
            pass_lock=self._embed_lock,
            on_embedded=self._background_embedded,
        )
        self._last_load = time.monotonic()
        self._watch_stop = threading.Event()
        self._watch_thread: threading.Thread | None = None
        self._run_lock = threading.Lock()
        self._run = IndexRun()
        self._run_thread: threading.Thread | None = None
        self._run_cancel: Cancel | None = None
        self._run_done: asyncio.Future[IndexRun] | None = None

    # Search -----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._snapshot.generation

    @property
    def chunk_count(self) -> int:
        """Chunks with a vector in the loaded snapshot."""
        return self._snapshot.size

    @property
    def chunks_total(self) -> int:
        """Chunks in the loaded generation, with a vector or not yet."""
        return self._snapshot.chunks

    def snapshot(
        self, conn: sqlite3.Connection, cancel: Cancel | None = None
    ) -> store.VectorSnapshot:
        """The vector snapshot for the index's current generation, reloading it if a writer
        (this service's indexer or another process) has committed since it was loaded."""
        current = store.generation(conn)
        if current == self._snapshot.generation:
            return self._snapshot
        # Another query is already loading the new generation: answer from the one loaded
        # (a chunk it lists that is gone is dropped when rows are fetched) rather than wait.
        if not self._reload_lock.acquire(blocking=False):
            return self._snapshot
        try:
            if store.generation(conn) != self._snapshot.generation:
                started = time.perf_counter()
                self._snapshot = store.load_snapshot(conn, cancel)
                self._update_gauges(conn)
                log.info(
                    "index generation %d loaded: %d vectors of %d chunks in %.0f ms",
                    self._snapshot.generation,
                    self._snapshot.size,
                    self._snapshot.chunks,
                    (time.perf_counter() - started) * 1000,
                )
        finally:
            self._reload_lock.release()
        return self._snapshot

    @property
    def model_fingerprint(self) -> str:
        """Which model makes this node's query vectors (see query_vector)."""
        return fingerprint(model_id=self.embedder.model_id, graph=self.embedder.graph)

    def embed_query(self, text: str, cancel: Cancel | None = None) -> Vector:
        """The unit vector of a query's text (blocking: call it through `QueryRunner.run`)."""
        vector: Vector = self.embedder.embed([text], cancel=cancel)[0]
        return vector

    def scry(self, query: Query, cancel: Cancel | None = None) -> list[Hit]:
        """Run one query (blocking: call it through `QueryRunner.run`)."""
        started = time.perf_counter()
        try:
            with self.pool.borrow(cancel) as conn:
                snap = self.snapshot(conn, cancel)
                hits = run_query(
                    conn,
                    snap,
                    self.embedder,
                    query,
                    self.settings,
                    cancel,
                    executor=self._query_bm25,
                )
        except Cancelled:
            self.metrics.scry_outcomes.labels(query.mode, "cancelled").inc()
            raise
        except Exception:
            self.metrics.scry_outcomes.labels(query.mode, "error").inc()
            raise
        self.metrics.scry_outcomes.labels(query.mode, "ok").inc()
        self.metrics.scry_duration.labels(query.mode).observe(time.perf_counter() - started)
        return hits

    def readiness(self) -> Readiness:
        """The modes complete over the loaded index, and its semantic coverage."""
        coverage = self._snapshot.semantic_coverage
        modes = MODES if coverage >= 1.0 else ("lexical",)
        return Readiness(modes_available=modes, semantic_coverage=round(coverage, 4))

    @property
    def embedding(self) -> EmbeddingState:
        """The background embedding pass's progress."""
        return self.background.state

    def _update_gauges(self, conn: sqlite3.Connection) -> None:
        documents, chunks = store.counts(conn)
        self.metrics.documents.set(documents)
        self.metrics.chunks.set(chunks)
        self.metrics.unembedded.set(max(0, self._snapshot.chunks - self._snapshot.size))
        self.metrics.semantic_coverage.set(self._snapshot.semantic_coverage)

    # Indexing ---------------------------------------------------------------------------

    def allowed_paths(self, requested: list[str] | None) -> list[tuple[Path, Path]]:
        """(path to index, configured root it lies in) for each requested path, or every
        configured root. Paths are resolved first, so a symlink out of a root is refused."""
        roots = [r.expanduser().resolve() for r in self.settings.roots]
        if not roots:
            raise Forbidden("no knowledge.roots are configured: the service indexes nothing")
        if not requested:
            return [(r, r) for r in roots]
        out: list[tuple[Path, Path]] = []
        for text in requested:
            raw = Path(text)
            if not raw.is_absolute():
                raise BadRequest(f"index path must be absolute: {text}")
            # One answer for "missing", "outside the roots" and "not a directory": a
            # caller who may index must not learn which paths exist on the server.
            refused = Forbidden(
                f"index path is not a directory inside the configured roots: {text}"
            )
            try:
                real = raw.resolve(strict=True)
                is_dir = real.is_dir()
            except (OSError, RuntimeError):
                raise refused from None
            root = next((r for r in roots if real.is_relative_to(r)), None)
            if root is None or not is_dir:
                raise refused
            out.append((real, root))
        return out

    def status(self) -> IndexRun:
        with self._run_lock:
            return IndexRun(**{**asdict(self._run), "reports": list(self._run.reports)})

    def start_index(
        self, targets: list[tuple[Path, Path]], *, repo: str | None, git: bool
    ) -> asyncio.Future[IndexRun]:
        """Start an indexing run on a thread; 409 if one is running. The future resolves
        (on the calling event loop) when the run ends."""
        loop = asyncio.get_running_loop()
        with self._run_lock:
            if self._run.state == "running":
                raise Conflict("an indexing run is already in progress")
            self._run = IndexRun(
                run_id=self._run.run_id + 1,
                state="running",
                paths=[str(p) for p, _root in targets],
                started_at=time.time(),
            )
            cancel = Cancel()
            done: asyncio.Future[IndexRun] = loop.create_future()
            thread = threading.Thread(
                target=self._index_thread,
                args=(targets, repo, git, cancel, loop, done),
                name="patina-index",
                daemon=True,
            )
            self._run_thread, self._run_cancel, self._run_done = thread, cancel, done
        self.metrics.index_runs.inc()
        thread.start()
        return done

    def _index_thread(
        self,
        targets: list[tuple[Path, Path]],
        repo: str | None,
        git: bool,
        cancel: Cancel,
        loop: asyncio.AbstractEventLoop,
        done: asyncio.Future[IndexRun],
    ) -> None:
        state: IndexState = "succeeded"
        error: str | None = None
        conn = None
        try:
            conn = store.open_index(self.path)
            indexer = Indexer(
                conn,
                self.embedder,
                self.settings,
                service_paths=self.service_paths,
                progress=self._run_progress,
            )
            for path, root in targets:
                # A sub-directory of a root keeps the root's repository name.
                report = indexer.index(
                    path, repo=repo or root.name, git=git, cancel=cancel, embed=False
                )
                with self._run_lock:
                    self._run.reports.append(report)
            # Every root's chunks are searchable by BM25 now; their vectors come last.
            self._load_latest()
            with self._embed_lock:
                embedded = embed_pending(
                    conn, self.embedder, cancel=cancel, progress=self._run_progress
                )
            self.metrics.vectors_embedded.inc(embedded)
            remaining = store.unembedded_count(conn)
            with self._run_lock:
                if self._run.reports:
                    self._run.reports[-1].chunks_embedded += embedded
                for report in self._run.reports:
                    report.chunks_unembedded = remaining
        except Cancelled:
            state = "cancelled"
        except Exception as exc:
            state, error = "failed", f"{type(exc).__name__}: {exc}"
            self.metrics.index_failures.inc()
            log.exception("indexing run failed")
        finally:
            if conn is not None:
                conn.close()
        with self._run_lock:
            self._run.state = state
            self._run.error = error
            self._run.finished_at = time.time()
            self._run.phase = None
        snapshot = self.status()
        if state == "succeeded":
            self._load_latest()
        else:
            # A run cut short leaves chunks without vectors: the background pass ends them.
            self.background.wake()
        if not loop.is_closed():
            loop.call_soon_threadsafe(_resolve, done, snapshot)

    # Live index -------------------------------------------------------------------------

    def start_watching(self) -> None:
        """With knowledge.watch, index every change under the configured roots as it
        happens (chunks at once, vectors by the background pass)."""
        roots = [r.expanduser().resolve() for r in self.settings.roots]
        roots = [r for r in roots if r.is_dir()]
        if not self.settings.watch or not roots or self._watch_thread is not None:
            return
        self._watch_thread = threading.Thread(
            target=self._watch, args=(roots,), name="patina-watch", daemon=True
        )
        self._watch_thread.start()

    def _watch(self, roots: list[Path]) -> None:
        conn = store.open_index(self.path)
        indexer = Indexer(conn, self.embedder, self.settings, service_paths=self.service_paths)

        def apply(batch: Batch) -> None:
            report = update_index(indexer, batch, repo=batch.root.name, embed=False)
            if report.files_indexed or report.files_deleted:
                log.info(
                    "watch: %s: %d files updated, %d removed",
                    report.repo,
                    report.files_indexed,
                    report.files_deleted,
                )
                self.background.wake()

        try:
            watch_roots(
                roots,
                apply,
                stop=self._watch_stop,
                ignored=never_indexed(self.service_paths),
                force_polling=self.settings.watch_polling,
            )
        except Exception:
            log.exception("watching the knowledge roots stopped")
        finally:
            conn.close()

    def _run_progress(self, phase: str, done: int, total: int) -> None:
        with self._run_lock:
            self._run.phase = _PHASES.get(phase, self._run.phase)
            self._run.done, self._run.total = done, total

    def _background_embedded(self, count: int) -> None:
        """After a group of the background pass (count > 0) or at its end (0): load the
        new vectors, at most every RELOAD_SECONDS while the pass runs (each load reads
        the whole matrix) and always when it ends."""
        self.metrics.vectors_embedded.inc(count)
        if count == 0 or time.monotonic() - self._last_load >= RELOAD_SECONDS:
            self._load_latest()

    def _load_latest(self) -> None:
        """Load the index's newest generation now rather than on the next query."""
        self._last_load = time.monotonic()
        try:
            with self.pool.borrow() as read:
                self.snapshot(read)
        except Exception:
            log.exception("reloading the index failed")

    def close(self) -> None:
        """Stop a running indexing run (at its next file), the background pass and the
        watcher, and close connections."""
        with self._run_lock:
            thread, cancel = self._run_thread, self._run_cancel
        if cancel is not None:
            cancel.fire()
        if thread is not None:
            thread.join()
        self._watch_stop.set()
        if self._watch_thread is not None:
            self._watch_thread.join()
        self.background.close()
        self._query_bm25.shutdown(wait=True)
        self.pool.close()
        if self.metrics.embed_duration.observe in self.embedder.observers:
            self.embedder.observers.remove(self.metrics.embed_duration.observe)


def _resolve(future: asyncio.Future[IndexRun], run: IndexRun) -> None:
    if not future.done():
        future.set_result(run)


@asynccontextmanager
async def open_knowledge(
    settings: Settings, *, registry: CollectorRegistry, embedder: Embedder | None = None
) -> AsyncIterator[KnowledgeService]:
    """Verify and load the model (unless an already loaded `embedder` is given: tests share
    one), open the index; close both on exit."""
    metrics = KnowledgeMetrics(registry)
    if embedder is None:
        embedder = await asyncio.to_thread(Embedder.from_settings, settings.knowledge)
    service = await asyncio.to_thread(
        KnowledgeService, settings, embedder=embedder, metrics=metrics
    )
    service.background.start()
    service.start_watching()
    try:
        yield service
    finally:
        service.close()
