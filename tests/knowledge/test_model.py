"""The embedding model and tokenizer: verified before loading, and run as intended."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from service.bootstrap import open_resources
from service.cancel import Cancel, Cancelled
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.model import (
    MODEL_SHA256,
    TOKENIZER_SHA256,
    ModelError,
    default_model_path,
    default_tokenizer_path,
    sha256_hex_of,
)
from service.settings import load_settings


def tampered_copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, deep inside the file
    dst.write_bytes(bytes(data))
    return dst


def test_shipped_files_match_their_pins() -> None:
    assert sha256_hex_of(default_model_path()) == MODEL_SHA256
    assert sha256_hex_of(default_tokenizer_path()) == TOKENIZER_SHA256


def test_tampered_model_refuses_to_load_naming_file_and_hashes(tmp_path: Path) -> None:
    bad = tampered_copy(default_model_path(), tmp_path / "model.onnx")
    with pytest.raises(ModelError) as err:
        Embedder.from_settings(KnowledgeSettings(model_path=bad))
    message = str(err.value)
    assert str(bad) in message
    assert f"expected {MODEL_SHA256}" in message
    assert f"actual {sha256_hex_of(bad)}" in message


def test_tampered_tokenizer_refuses_to_load_naming_file_and_hashes(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text(default_tokenizer_path().read_text().replace('"[UNK]"', '"[UNK ]"', 1))
    with pytest.raises(ModelError) as err:
        Embedder.from_settings(KnowledgeSettings(tokenizer_path=bad))
    message = str(err.value)
    assert str(bad) in message
    assert f"expected {TOKENIZER_SHA256}" in message
    assert f"actual {sha256_hex_of(bad)}" in message


@pytest.mark.anyio
async def test_service_with_a_tampered_model_refuses_to_start(tmp_path: Path) -> None:
    bad = tampered_copy(default_model_path(), tmp_path / "model.onnx")
    settings = load_settings(home=tmp_path / "home", knowledge={"model_path": str(bad)})
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        async with open_resources(settings):
            pass


def test_tokenizer_is_the_uncased_wordpiece_of_minilm(embedder: Embedder) -> None:
    assert embedder.tokenizer.encode("Hello world").ids == [101, 7592, 2088, 102]
    # Padding is off (the file pads to 128) and truncation is at 256 tokens.
    assert len(embedder.tokenizer.encode("short").ids) == 3
    assert len(embedder.tokenizer.encode("word " * 1000).ids) == 256


def test_embeddings_are_unit_vectors_independent_of_batch_padding(embedder: Embedder) -> None:
    texts = ["a short one", "a much longer sentence about caching parsed templates " * 5, "x"]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert together.shape == (3, 384)
    assert together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Padding a short text to a long neighbour must not change its vector (mask pooling).
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_similar_meanings_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    a, b, c = embedder.embed(
        ["How do I undo a failed deployment?", "Roll back a broken release", "Bananas are yellow"]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_cancel_terminates_a_running_onnx_batch(embedder: Embedder) -> None:
    # One batch of many 256-token texts takes seconds; terminate must end it early.
    texts = [f"token {i} " * 300 for i in range(256)]
    cancel = Cancel()
    started = threading.Event()
    result: list[object] = []

    def work() -> None:
        started.set()
        try:
            result.append(embedder.embed(texts, cancel=cancel, batch_size=len(texts)))
        except Cancelled as exc:
            result.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    started.wait()
    threading.Timer(0.3, cancel.fire).start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert len(result) == 1
    assert isinstance(result[0], Cancelled), "the ONNX run finished instead of stopping"


def test_batches_stay_within_the_token_budget_and_vectors_do_not_change(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [("word " * n).strip() for n in (3, 40, 90, 250, 400, 7, 120, 300)] * 3
    alone = np.stack([embedder.embed([t])[0] for t in texts[:8]])
    shapes: list[tuple[int, int]] = []
    run = embedder._run

    def recording(ids: np.ndarray, mask: np.ndarray, cancel: Cancel | None) -> np.ndarray:
        shapes.append(ids.shape)
        return run(ids, mask, cancel)

    monkeypatch.setattr(embedder, "_run", recording)
    monkeypatch.setattr(embedder, "batch_tokens", 512)
    batched = embedder.embed(texts)
    assert sum(rows for rows, _width in shapes) == len(texts)
    assert all(rows * width <= 512 or rows == 1 for rows, width in shapes)
    assert len(shapes) < len(texts)  # short texts still share a run
    np.testing.assert_allclose(batched[:8], alone, atol=1e-4)
