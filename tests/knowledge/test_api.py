"""The knowledge routes through the real app: contract, limits, gate, deadline, indexing."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.bootstrap import open_resources
from service.knowledge.embedder import Embedder
from service.resources import Resources
from service.settings import Settings, load_settings
from service.tokens import TokenRecord, TokenStore, digest
from service.transport.connection import ConnectionInfo, with_connection

from .conftest import ApiFactory, index_dir

pytestmark = pytest.mark.anyio
PATINA_FIELDS = {"id", "content", "score", "event_type", "source_id", "timestamp"}


async def wait_until_idle(resources: Resources, timeout: float = 30.0) -> None:
    """Bounded wait for the gate's slots to come back (they follow the worker threads)."""
    deadline = time.monotonic() + timeout
    while resources.queries.gate.in_use and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_scry_answers_the_patina_contract_plus_location_and_modes(
    api_for: ApiFactory, indexed: Settings
) -> None:
    async with api_for(indexed) as (_resources, client):
        response = await client.post("/api/scry", json={"query": "compute_backoff_delay"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(body["results"]) > 0
    assert body["mode"] == "hybrid"
    top = body["results"][0]
    assert set(top) >= PATINA_FIELDS
    assert top["path"] == "src/retry.py"
    assert top["start_line"] <= 6  # the function's lines (6-8) are inside the chunk
    assert top["end_line"] >= 8
    assert "def compute_backoff_delay(" in top["content"]
    assert top["source_id"] == "src/retry.py"
    assert top["event_type"] == "code.definition"
    assert top["repo"] == "shop"
    assert "lexical" in top["modes"]
    assert isinstance(top["id"], int)


async def test_patina_hybrid_false_means_semantic_and_unknown_fields_are_ignored(
    api_for: ApiFactory, indexed: Settings
) -> None:
    async with api_for(indexed) as (_resources, client):
        response = await client.post(
            "/api/scry",
            json={"query": "espresso", "hybrid": False, "dimension": "semantic", "future": 1},
        )
    assert response.status_code == 200
    assert response.json()["mode"] == "semantic"


async def test_limit_99999_returns_at_most_1000(
    api_for: ApiFactory, settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    many = tmp_path / "many"
    many.mkdir()
    for i in range(1200):
        # Identical text: 1200 chunks, one embedding.
        (many / f"page{i:04}.txt").write_text("widget assembly manual")
    report = index_dir(settings, embedder, many)
    assert report.chunks_written == 1200
    async with api_for(settings) as (_resources, client):
        for mode in ("hybrid", "lexical", "semantic"):
            response = await client.post(
                "/api/scry", json={"query": "widget", "limit": 99999, "mode": mode}
            )
            assert response.status_code == 200
            assert response.json()["count"] == 1000, mode


async def test_a_query_past_its_deadline_gets_504_and_its_work_stops(
    api_for: ApiFactory, indexed: Settings
) -> None:
    settings = indexed.model_copy(update={"query_timeout_ms": 1})
    async with api_for(settings) as (resources, client):
        # A long query keeps ONNX busy well past one millisecond.
        response = await client.post(
            "/api/scry", json={"query": "retry budget " * 400, "mode": "semantic"}
        )
        assert response.status_code == 504
        assert response.json() == {"error": "query exceeded its deadline"}
        await wait_until_idle(resources)
        assert resources.queries.gate.in_use == 0  # no worker thread still on the query
        metrics = resources.metrics.render()[0].decode()
    assert 'scry_queries_total{mode="semantic",outcome="cancelled"} 1.0' in metrics
    assert 'scry_queries_total{mode="semantic",outcome="ok"}' not in metrics  # it stopped


async def test_queries_beyond_the_gate_get_503(api_for: ApiFactory, indexed: Settings) -> None:
    settings = indexed.model_copy(update={"max_concurrent_queries": 1})
    async with api_for(settings) as (resources, client):
        assert resources.queries.gate.try_acquire()  # a query in flight holds the only slot
        try:
            busy = await client.post("/api/scry", json={"query": "retry"})
        finally:
            resources.queries.gate.release()
        after = await client.post("/api/scry", json={"query": "retry"})
    assert busy.status_code == 503
    assert busy.headers["retry-after"]
    assert "error" in busy.json()
    assert after.status_code == 200


async def test_invalid_requests_get_422_with_an_error_body(
    api_for: ApiFactory, indexed: Settings
) -> None:
    async with api_for(indexed) as (_resources, client):
        for body in (
            {},
            {"query": ""},
            {"query": "x", "mode": "fuzzy"},
            {"query": "x", "limit": -1},
        ):
            response = await client.post("/api/scry", json=body)
            assert response.status_code == 422, body
            assert set(response.json()) == {"error"}


async def test_metrics_record_scry_embedding_and_index_size(
    api_for: ApiFactory, indexed: Settings
) -> None:
    async with api_for(indexed) as (_resources, client):
        for mode in ("hybrid", "lexical"):
            await client.post("/api/scry", json={"query": "invoice", "mode": mode})
        text = (await client.get("/metrics")).text
    assert 'scry_duration_seconds_count{mode="hybrid"} 1.0' in text
    assert 'scry_duration_seconds_count{mode="lexical"} 1.0' in text
    assert "embed_duration_seconds_count 1.0" in text  # lexical embeds nothing
    assert "knowledge_chunks " in text
    assert "knowledge_chunks 0.0" not in text
    assert "knowledge_documents 5.0" in text
    assert "invoice" not in text  # never a query in a label


async def test_index_route_indexes_configured_roots_and_scry_sees_it(
    api_for: ApiFactory, settings: Settings
) -> None:
    async with api_for(settings) as (_resources, client):
        assert (await client.post("/api/scry", json={"query": "espresso"})).json()["count"] == 0
        response = await client.post("/api/index", json={"wait": True})
        assert response.status_code == 200, response.text
        status = response.json()
        assert status["state"] == "succeeded"
        assert status["reports"][0]["files_indexed"] == 5
        assert status["chunks"] > 0
        found = (await client.post("/api/scry", json={"query": "espresso"})).json()
        assert found["results"][0]["path"] == "notes/office.txt"
        polled = (await client.get("/api/index/status")).json()
        assert polled["run_id"] == status["run_id"]
        assert polled["state"] == "succeeded"
        metrics = (await client.get("/metrics")).text
    assert "index_runs_total 1.0" in metrics
    assert "index_failures_total 0.0" in metrics


async def test_index_route_accepted_runs_in_background(
    api_for: ApiFactory, settings: Settings
) -> None:
    async with api_for(settings) as (resources, client):
        response = await client.post("/api/index", json={})
        assert response.status_code == 202
        assert response.json()["state"] == "running"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = (await client.get("/api/index/status")).json()
            if status["state"] != "running":
                break
            await asyncio.sleep(0.05)
        assert status["state"] == "succeeded"
        assert resources.knowledge is not None
        assert resources.knowledge.chunk_count > 0


async def test_index_paths_outside_roots_are_refused_including_symlink_escapes(
    api_for: ApiFactory, settings: Settings, corpus: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, corpus / "escape")
    async with api_for(settings) as (_resources, client):
        refused = [
            str(outside),
            str(corpus / "escape"),
            str(corpus / ".." / "elsewhere"),
            str(corpus / "missing"),
            str(corpus / "README.md"),
        ]
        for path in refused:
            response = await client.post("/api/index", json={"paths": [path], "wait": True})
            assert response.status_code == 403, (path, response.text)
            assert set(response.json()) == {"error"}
        relative = await client.post("/api/index", json={"paths": ["relative/path"]})
        assert relative.status_code == 400
        inside = await client.post(
            "/api/index", json={"paths": [str(corpus / "src")], "wait": True}
        )
        assert inside.status_code == 200
        assert inside.json()["reports"][0]["repo"] == "shop"


async def test_index_answers_alike_whether_a_path_outside_the_roots_exists_or_not(
    api_for: ApiFactory, settings: Settings, tmp_path: Path
) -> None:
    existing = tmp_path / "private"
    existing.mkdir()
    (existing / "id_ed25519").write_text("key")
    probes = [existing, existing / "id_ed25519", tmp_path / "no-such-dir", Path("/etc"),
              Path("/etc/no-such-file")]  # fmt: skip
    async with api_for(settings) as (_resources, client):
        answers = []
        for probe in probes:
            response = await client.post("/api/index", json={"paths": [str(probe)]})
            answers.append(
                (response.status_code, response.json()["error"].replace(str(probe), "P"))
            )
    assert len(set(answers)) == 1, answers
    assert answers[0][0] == 403


async def test_index_without_configured_roots_is_refused(
    api_for: ApiFactory, tmp_path: Path
) -> None:
    async with api_for(load_settings(home=tmp_path / "bare")) as (_resources, client):
        response = await client.post("/api/index", json={})
    assert response.status_code == 403
    assert "roots" in response.json()["error"]


async def test_tcp_tokens_need_the_matching_scope(indexed: Settings, embedder: Embedder) -> None:
    tokens = TokenStore(
        [
            TokenRecord("reader", digest("reader-token-0123456789"), frozenset({"scry"})),
            TokenRecord("ops", digest("ops-token-0123456789"), frozenset({"secrets"})),
        ]
    )
    async with open_resources(indexed, tokens=tokens, embedder=embedder) as resources:
        app = with_connection(create_app(resources), ConnectionInfo("tcp"))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://patina.local"
        ) as client:

            def auth(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            anon = await client.post("/api/scry", json={"query": "x"})
            reader = await client.post(
                "/api/scry", json={"query": "x"}, headers=auth("reader-token-0123456789")
            )
            reader_index = await client.post(
                "/api/index", json={}, headers=auth("reader-token-0123456789")
            )
            ops = await client.post(
                "/api/scry", json={"query": "x"}, headers=auth("ops-token-0123456789")
            )
    assert anon.status_code == 401
    assert reader.status_code == 200
    assert reader_index.status_code == 403
    assert ops.status_code == 403


CALLER_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


@pytest.mark.parametrize(
    "body",
    [{CALLER_KEY: 1}, {"paths": [], "wait": True, CALLER_KEY: "x"}],
)
async def test_an_index_422_never_repeats_a_key_the_caller_chose(
    api_for: ApiFactory, settings: Settings, body: dict[str, object]
) -> None:
    async with api_for(settings) as (_resources, client):
        response = await client.post("/api/index", json=body)
    assert response.status_code == 422
    assert CALLER_KEY not in response.text
    assert "<key>" in response.json()["error"]
