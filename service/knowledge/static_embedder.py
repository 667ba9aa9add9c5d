"""Static embeddings distilled from the shipped MiniLM: one vector per vocabulary token,
so embedding a text is a table lookup and a mean, thousands of chunks per second.

Distillation (about a minute on 2 cores, once): every token of the verified tokenizer's
vocabulary goes through the verified ONNX model alone (`[SEP] token [CLS]`), and the mean of
the model's outputs becomes that token's vector. The common direction all those vectors
share is removed (it carries no meaning, only makes every pair look alike), and each token
is weighted by how rare its vocabulary rank says it is (smooth inverse frequency), so `the`
counts less than `jitter`.

The table is cached in the data directory under a name that pins the model's and the
tokenizer's SHA-256 and this recipe's version, beside the SHA-256 of its own bytes; a
cache whose bytes do not match is recomputed, never trusted. Nothing is downloaded.

Texts are split into words code-aware (`parseHTTPRequest` -> `parse http request`) before
WordPiece, because the model's vocabulary knows words, not identifiers.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from service.cancel import Cancel
from service.fileio import write_private
from service.knowledge.embedder import Embedder, Vectors
from service.knowledge.model import DIMENSIONS, MODEL_SHA256, TOKENIZER_SHA256

log = logging.getLogger("patina.knowledge")

RECIPE = 2  # bump when the distillation below changes: old caches are then ignored
# Measured on the prose evaluation (bench/knowledge/eval.py corpus, semantic nDCG@10):
# raw token outputs 0.27; centred 0.32; centred with these SIF weights 0.42.
SIF_A = 3e-5
STATIC_MODEL_ID = f"minilm-static-r{RECIPE}"
_BATCH = 512
_MAX_TOKENS = 4096  # per text: a static model has no window, but a chunk is bounded anyway


class StaticEmbedder:
    """Unit vectors of DIMENSIONS float32 from a token table: `embed(texts)` like Embedder."""

    dimensions = DIMENSIONS
    model_id = STATIC_MODEL_ID
    graph = "static"

    def __init__(self, table: npt.NDArray[np.float32], tokenizer_json: str) -> None:
        if table.shape[1] != DIMENSIONS:
            raise ValueError(f"static table has {table.shape[1]} dimensions, not {DIMENSIONS}")
        self.table = table
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.observers: list[Callable[[float], None]] = []

    @classmethod
    def load_or_distill(
        cls, model: Embedder, tokenizer_json: str, cache_dir: Path
    ) -> StaticEmbedder:
        """The cached table for this model and tokenizer, or a fresh distillation of
        `model` (which must be the verified fp32 model) written to the cache."""
        if model.graph != "fp32":
            raise ValueError(
                f"static embeddings are distilled from the fp32 graph, not {model.graph}"
            )
        path = cache_dir / f"{STATIC_MODEL_ID}-{MODEL_SHA256[:16]}-{TOKENIZER_SHA256[:16]}.npy"
        table = _read_cache(path)
        if table is None:
            started = time.perf_counter()
            table = distill(model, tokenizer_json)
            _write_cache(path, table)
            log.info(
                "static embeddings distilled from the model in %.1fs (%d tokens), cached at %s",
                time.perf_counter() - started,
                table.shape[0],
                path,
            )
        return cls(table, tokenizer_json)

    def embed(
        self,
        texts: Sequence[str],
        *,
        cancel: Cancel | None = None,
        batch_size: int | None = None,
    ) -> Vectors:
        """Embed `texts` (in order) as an (n, DIMENSIONS) float32 matrix of unit rows."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        started = time.perf_counter()
        step = batch_size or 256
        for first in range(0, len(texts), step):
            if cancel is not None:
                cancel.raise_if_cancelled()
            batch = [prepare(t) for t in texts[first : first + step]]
            encodings = self.tokenizer.encode_batch(batch, add_special_tokens=False)
            ids = [e.ids[:_MAX_TOKENS] for e in encodings]
            lengths = np.array([len(i) for i in ids], dtype=np.int64)
            if not lengths.sum():
                continue
            # A bag of token ids per text times the table of the batch's distinct tokens:
            # one matrix product instead of gathering a row per token.
            flat = np.fromiter((t for row in ids for t in row), dtype=np.int64, count=lengths.sum())
            distinct, column = np.unique(flat, return_inverse=True)
            row = np.repeat(np.arange(len(ids)), lengths)
            counts = np.bincount(row * len(distinct) + column, minlength=len(ids) * len(distinct))
            bags = counts.reshape(len(ids), len(distinct)).astype(np.float32)
            out[first : first + len(ids)] = bags @ self.table[distinct]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        elapsed = time.perf_counter() - started
        for observe in list(self.observers):
            observe(elapsed)
        return out


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_JOINERS = re.compile(r"[_\-]+")


def prepare(text: str) -> str:
    """Identifiers split into words, so WordPiece sees `parse HTTP Request`."""
    return _JOINERS.sub(" ", _CAMEL_BOUNDARY.sub(" ", text))


def distill(model: Embedder, tokenizer_json: str) -> npt.NDArray[np.float32]:
    """One weighted vector per vocabulary token (see the module's docstring)."""
    tokenizer = Tokenizer.from_str(tokenizer_json)
    size = tokenizer.get_vocab_size()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    raw = np.zeros((size, DIMENSIONS), dtype=np.float32)
    for first in range(0, size, _BATCH):
        ids = np.arange(first, min(size, first + _BATCH), dtype=np.int64)
        # The special tokens around the token, reversed: measured better for static tables
        # (model2vec's observation, checked here on the code-search benchmark).
        batch = np.stack([np.full_like(ids, sep_id), ids, np.full_like(ids, cls_id)], axis=1)
        raw[first : first + len(ids)] = model._run(batch, np.ones_like(batch), None)
    special = np.array(
        [i for token, i in tokenizer.get_vocab().items() if token.startswith("[")], dtype=np.int64
    )
    usable = np.ones(size, dtype=bool)
    usable[special] = False
    centred = raw - raw[usable].mean(axis=0)
    # Smooth inverse frequency: the vocabulary is ordered by frequency, so Zipf's law turns a
    # token's rank into its probability p, and a / (a + p) weighs rare tokens up.
    rank = np.arange(1, size + 1, dtype=np.float64)
    probability = 1.0 / (rank * np.log(size))
    weights = (SIF_A / (SIF_A + probability)).astype(np.float32)
    table: npt.NDArray[np.float32] = (centred * weights[:, None]).astype(np.float32)
    table[~usable] = 0.0
    return table


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_cache(path: Path) -> npt.NDArray[np.float32] | None:
    sidecar = path.with_suffix(".sha256")
    try:
        data = path.read_bytes()
        expected = sidecar.read_text().strip()
    except OSError:
        return None
    if _digest(data) != expected:
        log.warning("static embedding cache %s does not match its SHA-256: recomputing", path)
        return None
    try:
        table: npt.NDArray[Any] = np.asarray(np.load(io.BytesIO(data), allow_pickle=False))
    except (ValueError, OSError):
        return None
    if table.dtype != np.float32 or table.ndim != 2 or table.shape[1] != DIMENSIONS:
        return None
    result: npt.NDArray[np.float32] = table.astype(np.float32, copy=False)
    return result


def _write_cache(path: Path, table: npt.NDArray[np.float32]) -> None:
    """Write the table, then its SHA-256, each atomically and 0600 (fileio.write_private)."""
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    data = buffer.getvalue()
    write_private(path, data)
    write_private(path.with_suffix(".sha256"), _digest(data).encode())
