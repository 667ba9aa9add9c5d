"""An index written by the previous schema upgrades itself on open and keeps answering."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from service.knowledge import store
from service.knowledge.embedder import Embedder
from service.knowledge.indexer import sha256_hex
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.search import Query
from service.knowledge.service import KnowledgeService, index_path
from service.settings import Settings

from .conftest import index_dir

OLD_CHUNKS = [
    ("src/retry.py", "code", "def compute_backoff_delay(attempt):\n    return attempt * 2\n"),
    ("tests/test_retry.py", "code", "def test_backoff():\n    assert compute_backoff_delay(1)\n"),
    ("docs/retry.md", "markdown", "# Retries\n\nBackoff doubles each attempt.\n"),
]


def write_schema_1_index(path: Path, *, root: str = "/shop", content_hash: str = "old") -> None:
    """An index as the previous release wrote it: schema 1, chunks and vectors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = store.connect(path)
    with store.transaction(conn):
        store.MIGRATIONS[0](conn)
        conn.execute("PRAGMA user_version=1")
        for n, (rel, kind, text) in enumerate(OLD_CHUNKS):
            doc = conn.execute(
                "INSERT INTO documents(repo, root, path, kind, content_hash, timestamp, "
                "indexed_at) VALUES ('shop', ?, ?, ?, ?, '', 0)",
                (root, rel, kind, content_hash),
            ).lastrowid
            chunk = conn.execute(
                "INSERT INTO chunks(document_id, repo, path, kind, event_type, source_id, "
                "timestamp, start_line, end_line, content, text_hash) VALUES "
                "(?, 'shop', ?, ?, 'code.definition', ?, '', 1, 2, ?, ?)",
                (doc, rel, kind, rel, text, f"h{n}"),
            ).lastrowid
            vector = np.zeros(384, dtype=np.float32)
            vector[n] = 1.0
            conn.execute("INSERT INTO vectors VALUES (?, ?)", (chunk, store.vector_blob(vector)))
    conn.close()


def test_a_schema_1_index_is_upgraded_and_re_tokenized(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    path = index_path(settings)
    write_schema_1_index(path)
    with caplog.at_level(logging.WARNING, logger="patina.knowledge"):
        conn = store.open_index(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 2
        # Identifiers are split now: one word of `compute_backoff_delay` finds it.
        found = conn.execute(
            "SELECT c.path FROM code_fts f JOIN chunks c ON c.id = f.rowid "
            "WHERE code_fts MATCH 'backoff' ORDER BY c.path"
        ).fetchall()
        roles = dict(conn.execute("SELECT path, role FROM chunks").fetchall())
        hashes = {row[0] for row in conn.execute("SELECT content_hash FROM documents")}
        vectors = conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
    finally:
        conn.close()
    assert [p for (p,) in found] == ["docs/retry.md", "src/retry.py", "tests/test_retry.py"]
    assert roles == {"src/retry.py": "code", "tests/test_retry.py": "test", "docs/retry.md": "docs"}
    assert hashes == {""}  # every file is re-chunked at the next index run
    assert vectors == len(OLD_CHUNKS)  # vectors are kept until then
    assert "upgraded to schema 2" in caplog.text
    assert "run `patina index` again" in caplog.text


def test_an_upgraded_index_answers_and_the_next_run_rechunks_it(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    # The old index holds the corpus's own files with their real content hashes: only
    # the upgrade's reset makes the next run read them again.
    root = corpus.resolve()
    digest = sha256_hex((root / "src/retry.py").read_bytes())
    write_schema_1_index(index_path(settings), root=str(root), content_hash=digest)
    svc = KnowledgeService(
        settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    try:
        hits = svc.scry(Query("backoff delay", mode="lexical"))
        assert hits[0].chunk.path == "src/retry.py"
        assert hits[0].chunk.symbols == ()  # chunked by the previous release
    finally:
        svc.close()
    report = index_dir(settings, embedder, corpus)
    assert report.files_unchanged == 0
    conn = store.open_index(index_path(settings))
    try:
        symbols = {
            s
            for (text,) in conn.execute("SELECT symbols FROM chunks WHERE path = 'src/retry.py'")
            for s in text.split()
        }
    finally:
        conn.close()
    assert {"compute_backoff_delay", "RetryBudget"} <= symbols
