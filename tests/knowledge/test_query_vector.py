"""A query's embedding sent with the request: used when it comes from the same model,
ignored when it does not, refused (400) when malformed."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from service.errors import BadRequest
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.graphs import GRAPHS
from service.knowledge.model import DIMENSIONS
from service.knowledge.query_vector import QueryVector, decode, encode, fingerprint
from service.settings import Settings
from tests.support.metrics import metric_total

from .conftest import ApiFactory

# The fingerprint of the service's query vectors, and one of another graph of the same model.
MODEL = fingerprint(graph=KnowledgeSettings().query_graph)
OTHER_GRAPH = next(g for g in GRAPHS if g != KnowledgeSettings().query_graph)


def _paths(body: dict[str, object]) -> list[tuple[str, int]]:
    results = body["results"]
    assert isinstance(results, list)
    return [(hit["path"], hit["start_line"]) for hit in results]


def test_a_vector_survives_the_wire_exactly(embedder: Embedder) -> None:
    vector = embedder.embed(["rolling back a release"])[0]
    back = decode(encode(vector, model=MODEL), model=MODEL)
    assert back is not None
    np.testing.assert_allclose(back, vector, rtol=1e-6)


def test_a_vector_from_another_model_is_ignored(embedder: Embedder) -> None:
    vector = embedder.embed(["rolling back a release"])[0]
    sent = encode(vector, model=fingerprint(graph=OTHER_GRAPH))
    assert decode(sent, model=MODEL) is None


@pytest.mark.parametrize(
    ("f32le", "message"),
    [
        ("not base64!", "query_vector.f32le is not base64"),
        (base64.b64encode(b"\0" * 12).decode(), f"query_vector must hold {DIMENSIONS} float32"),
        (base64.b64encode(b"\0" * DIMENSIONS * 4).decode(), "finite and not zero"),
        (
            base64.b64encode(np.full(DIMENSIONS, np.nan, "<f4").tobytes()).decode(),
            "finite and not zero",
        ),
    ],
)
def test_a_malformed_vector_is_a_bad_request(f32le: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode(QueryVector(model=MODEL, f32le=f32le), model=MODEL)


@pytest.mark.anyio
async def test_scry_ranks_by_the_sent_vector_not_by_embedding_the_text_again(
    api_for: ApiFactory, indexed: Settings, embedder: Embedder
) -> None:
    # The vector of another question: if the service used it, the ranking is that
    # question's ranking, although the text says something else.
    other = "how long to wait before retrying a request"
    sent = encode(embedder.embed([other])[0], model=MODEL).model_dump()
    async with api_for(indexed) as (resources, client):
        plain = await client.post("/api/scry", json={"query": "espresso", "mode": "semantic"})
        wanted = await client.post("/api/scry", json={"query": other, "mode": "semantic"})
        embeds_before = _embed_count(resources.metrics.render()[0].decode())
        with_vector = await client.post(
            "/api/scry", json={"query": "espresso", "mode": "semantic", "query_vector": sent}
        )
        embeds_after = _embed_count(resources.metrics.render()[0].decode())
        foreign = {**sent, "model": "some-other-model/0/fp32"}
        ignored = await client.post(
            "/api/scry", json={"query": "espresso", "mode": "semantic", "query_vector": foreign}
        )
        bad = await client.post(
            "/api/scry",
            json={"query": "espresso", "query_vector": {"model": MODEL, "f32le": "AAAA"}},
        )
        after_bad = await client.post("/api/scry", json={"query": "espresso"})
    assert with_vector.status_code == plain.status_code == 200
    assert _paths(with_vector.json()) == _paths(wanted.json()) != _paths(plain.json())
    assert embeds_after == embeds_before  # the text was not embedded again
    assert _paths(ignored.json()) == _paths(plain.json())
    assert bad.status_code == 400
    assert bad.json() == {"error": f"query_vector must hold {DIMENSIONS} float32 values"}
    assert after_bad.status_code == 200


def _embed_count(metrics: str) -> float:
    assert "embed_duration_seconds_count" in metrics
    return metric_total(metrics, "embed_duration_seconds_count")
