"""Static embeddings distilled from the verified model: cache, verification, embedding."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest

from service.knowledge import static_embedder
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.model import DIMENSIONS, load_model_files
from service.knowledge.static_embedder import StaticEmbedder, prepare


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    return load_model_files(KnowledgeSettings()).tokenizer_json


def fake_table(size: int = 30522) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(7)
    return rng.standard_normal((size, DIMENSIONS)).astype(np.float32)


def test_identifiers_are_split_into_words_before_wordpiece() -> None:
    assert prepare("parseHTTPRequest bash_completions max-age") == (
        "parse HTTP Request bash completions max age"
    )


def test_embeddings_are_unit_vectors_and_spelling_of_identifiers_does_not_matter(
    tokenizer_json: str,
) -> None:
    embedder = StaticEmbedder(fake_table(), tokenizer_json)
    vectors = embedder.embed(["parseHttpRequest", "parse_http_request", "unrelated words", ""])
    assert vectors.shape == (4, DIMENSIONS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[1], rtol=1e-5)
    assert float(vectors[0] @ vectors[2]) < 0.99
    assert not vectors[3].any()  # nothing to embed
    # Batches give the same vectors as one by one.
    one_by_one = np.stack([embedder.embed([t])[0] for t in ["parse_http_request", "a b"]])
    np.testing.assert_allclose(embedder.embed(["parse_http_request", "a b"]), one_by_one, 1e-5)


def test_only_the_fp32_graph_is_distilled(tmp_path: Path, tokenizer_json: str) -> None:
    # The table is the fp32 model's token vectors; a rounded graph would give another table
    # under the same cache name.
    model = SimpleNamespace(graph="int8-weights")
    with pytest.raises(ValueError, match="from the fp32 graph, not int8-weights"):
        StaticEmbedder.load_or_distill(model, tokenizer_json, tmp_path)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def test_the_table_is_distilled_once_cached_privately_and_verified(
    tmp_path: Path,
    tokenizer_json: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def fake_distill(model: Embedder, tokenizer: str) -> npt.NDArray[np.float32]:
        calls.append(1)
        return fake_table()

    monkeypatch.setattr(static_embedder, "distill", fake_distill)
    model = SimpleNamespace(graph="fp32")  # never run: the fake distils
    first = StaticEmbedder.load_or_distill(model, tokenizer_json, tmp_path)  # type: ignore[arg-type]
    [cache] = tmp_path.glob("*.npy")
    assert cache.stat().st_mode & 0o777 == 0o600
    second = StaticEmbedder.load_or_distill(model, tokenizer_json, tmp_path)  # type: ignore[arg-type]
    assert len(calls) == 1  # the second load read the cache
    np.testing.assert_array_equal(first.table, second.table)
    # A cache whose bytes no longer match their recorded SHA-256 is recomputed.
    data = bytearray(cache.read_bytes())
    data[-1] ^= 0xFF
    cache.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="patina.knowledge"):
        StaticEmbedder.load_or_distill(model, tokenizer_json, tmp_path)  # type: ignore[arg-type]
    assert len(calls) == 2
    assert "does not match its SHA-256" in caplog.text


def test_a_table_of_the_wrong_shape_is_refused(tokenizer_json: str) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        StaticEmbedder(np.zeros((10, 7), dtype=np.float32), tokenizer_json)


@pytest.mark.slow
def test_distillation_from_the_real_model_gives_meaningful_vectors(
    embedder: Embedder, tokenizer_json: str
) -> None:
    table = static_embedder.distill(embedder, tokenizer_json)
    assert table.shape == (30522, DIMENSIONS)
    assert not table[:1].any()  # [PAD] and the other special tokens weigh nothing
    static = StaticEmbedder(table, tokenizer_json)
    query, near, far = static.embed(
        ["bash completion script", "GenBashCompletion writes the bash completions", "bread"]
    )
    assert float(query @ near) > float(query @ far) + 0.2
