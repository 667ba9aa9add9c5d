"""Ready in seconds, complete in the background: chunks (and BM25) are committed before any
vector, the embedding pass commits its vectors group by group, and the answers say which
modes cover the whole index so far."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from service.knowledge import store
from service.knowledge.embedder import Embedder
from service.knowledge.embedding_pass import embed_pending
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.search import Query
from service.knowledge.service import KnowledgeService, index_path
from service.settings import Settings

from .conftest import ApiFactory, index_dir

anyio = pytest.mark.anyio


def test_chunks_are_searchable_before_any_vector_exists(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    calls: list[float] = []
    embedder.observers.append(calls.append)
    try:
        report = index_dir(settings, embedder, corpus, embed=False)
    finally:
        embedder.observers.remove(calls.append)
    assert calls == []  # the model never ran
    assert report.chunks_written > 0
    assert report.chunks_unembedded == report.chunks_written
    svc = KnowledgeService(
        settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    try:
        readiness = svc.readiness()
        assert readiness.modes_available == ("lexical",)
        assert readiness.semantic_coverage == 0.0
        for mode in ("lexical", "hybrid"):
            hits = svc.scry(Query("compute_backoff_delay", mode=mode, limit=3))
            assert hits[0].chunk.path == "src/retry.py", mode
        # Semantic search has nothing to search yet: an honest empty answer.
        assert svc.scry(Query("coffee maker cleaning", mode="semantic")) == []
    finally:
        svc.close()


def test_the_embedding_pass_commits_group_by_group_and_completes_the_index(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    index_dir(settings, embedder, corpus, embed=False)
    path = index_path(settings)
    writer = store.open_index(path)
    reader = store.connect(path)
    seen: list[tuple[int, int]] = []

    def progress(stage: str, done: int, total: int) -> None:
        # Another connection sees each group as soon as it is reported.
        vectors = reader.execute("SELECT count(*) FROM vectors").fetchone()[0]
        seen.append((done, vectors))

    try:
        total = store.unembedded_count(writer)
        embedded = embed_pending(writer, embedder, progress=progress, group=2)
        assert embedded == total
        assert seen[0] == (0, 0)
        assert [vectors for done, vectors in seen] == [done for done, _v in seen]
        assert len(seen) > 2  # several commits, not one at the end
        assert store.unembedded_count(writer) == 0
        snapshot = store.load_snapshot(reader)
        assert snapshot.semantic_coverage == 1.0
    finally:
        writer.close()
        reader.close()
    svc = KnowledgeService(
        settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    try:
        assert svc.readiness().modes_available == ("hybrid", "lexical", "semantic")
        # The paraphrase shares no word with its target: only vectors find it.
        hits = svc.scry(Query("coffee maker cleaning schedule", mode="semantic", limit=1))
        assert hits[0].chunk.path == "notes/office.txt"
    finally:
        svc.close()


def test_a_chunk_deleted_while_it_is_embedded_gets_no_vector(
    settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    index_dir(settings, embedder, corpus, embed=False)
    conn = store.open_index(index_path(settings))
    try:
        ids = [row[0] for row in conn.execute("SELECT id FROM chunks ORDER BY id")]
        with store.transaction(conn):
            conn.execute("DELETE FROM chunks WHERE id = ?", (ids[0],))
        store.add_vectors(conn, [(ids[0], b"\0" * 1536), (ids[1], b"\0" * 1536)])
        stored = {row[0] for row in conn.execute("SELECT chunk_id FROM vectors")}
    finally:
        conn.close()
    assert stored == {ids[1]}


@anyio
async def test_the_service_finishes_an_index_left_without_vectors_and_says_how_far_it_is(
    api_for: ApiFactory, settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    index_dir(settings, embedder, corpus, embed=False)
    async with api_for(settings) as (_resources, client):
        deadline = time.monotonic() + 120
        status = (await client.get("/api/index/status")).json()
        while status["semantic_coverage"] < 1.0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            status = (await client.get("/api/index/status")).json()
        assert status["semantic_coverage"] == 1.0
        assert status["modes_available"] == ["hybrid", "lexical", "semantic"]
        assert status["chunks"] == status["chunks_total"] > 0
        answer = (await client.post("/api/scry", json={"query": "invoice pdf"})).json()
        assert answer["modes_available"] == ["hybrid", "lexical", "semantic"]
        assert answer["semantic_coverage"] == 1.0
        metrics = (await client.get("/metrics")).text
    assert "knowledge_chunks_unembedded 0.0" in metrics
    assert "knowledge_semantic_coverage 1.0" in metrics
    assert f"knowledge_vectors_embedded_total {float(status['chunks'])}" in metrics


@anyio
async def test_an_index_run_reports_its_phases_and_a_lexical_answer_says_so(
    api_for: ApiFactory, settings: Settings
) -> None:
    async with api_for(settings) as (resources, client):
        knowledge = resources.knowledge
        assert knowledge is not None
        phases: list[str] = []
        original = knowledge._run_progress

        def spy(phase: str, done: int, total: int) -> None:
            original(phase, done, total)
            phases.append(knowledge.status().phase or "")

        knowledge._run_progress = spy  # type: ignore[method-assign]
        response = await client.post("/api/index", json={"wait": True})
        assert response.status_code == 200, response.text
        status = response.json()
        assert status["phase"] is None  # finished
        assert status["reports"][0]["lexical_seconds"] <= status["reports"][0]["seconds"]
        assert status["reports"][0]["chunks_unembedded"] == 0
        assert phases.index("files") < phases.index("vectors")
