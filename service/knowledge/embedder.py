"""Sentence embeddings with all-MiniLM-L6-v2 on onnxruntime.

Texts are tokenized without padding, sorted by length and run in batches padded only to
their own longest input (the shipped tokenizer pads everything to 128 tokens, which wastes
most of the work on short texts). Token vectors are mean-pooled over the attention mask and
L2-normalised, as sentence-transformers does, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from service.cancel import Cancel, Cancelled
from service.knowledge.config import KnowledgeSettings
from service.knowledge.graphs import Graph, prepare
from service.knowledge.model import DIMENSIONS, MODEL_ID, ModelFiles, load_model_files

Vectors = npt.NDArray[np.float32]


class TextEmbedder(Protocol):
    """What indexing and search need of an embedding model: MiniLM (Embedder) or the
    static table distilled from it (StaticEmbedder)."""

    dimensions: int
    model_id: str
    observers: list[Callable[[float], None]]

    @property
    def graph(self) -> str:
        """Which graph of the model makes the vectors (graphs.py), or "static"."""
        ...

    def embed(
        self, texts: Sequence[str], *, cancel: Cancel | None = None, batch_size: int | None = None
    ) -> Vectors: ...


class Embedder:
    """Turns texts into unit vectors of DIMENSIONS float32."""

    dimensions = DIMENSIONS
    model_id = MODEL_ID

    def __init__(
        self,
        files: ModelFiles,
        *,
        intra_op_threads: int = 2,
        max_tokens: int = 256,
        batch_size: int = 32,
        batch_tokens: int = 0,
        graph: Graph = "fp32",
        memory_arena: bool = True,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        """`batch_tokens` (0: no bound) caps a batch's padded tokens, whatever
        `batch_size` allows: the activations, attention above all, grow with rows x
        width^2, so long inputs go in smaller batches. Without `memory_arena` ONNX returns
        each run's buffers instead of keeping the largest it ever needed."""
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.max_tokens = max_tokens
        self.graph: Graph = graph
        # Called with the seconds each embed() took (the service's histogram listens here).
        self.observers: list[Callable[[float], None]] = [observe] if observe else []
        self.tokenizer = Tokenizer.from_str(files.tokenizer_json)
        # The file pads to a fixed 128 and truncates at 128: pad per batch instead, and keep
        # up to the model's own maximum sequence length.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = memory_arena
        options.enable_mem_pattern = memory_arena
        self.session = ort.InferenceSession(
            prepare(files.model_bytes, graph),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._input_names = {i.name for i in self.session.get_inputs()}

    @classmethod
    def from_settings(
        cls,
        settings: KnowledgeSettings,
        *,
        observe: Callable[[float], None] | None = None,
        for_indexing: bool = False,
    ) -> Embedder:
        """Verify the model files against their pinned hashes and load them (in the graph
        the settings ask for queries, or for bulk indexing with `for_indexing`)."""
        return cls(
            load_model_files(settings),
            intra_op_threads=(
                settings.intra_op_threads if for_indexing else settings.query_intra_op_threads
            ),
            max_tokens=settings.max_tokens,
            batch_size=settings.batch_size,
            batch_tokens=settings.batch_tokens,
            graph=(
                ("int8-dynamic" if settings.quantize_indexing else "fp32")
                if for_indexing
                else settings.query_graph
            ),
            # Bulk embedding sees every input width; queries run the same few shapes.
            memory_arena=not for_indexing,
            observe=observe,
        )

    def embed(
        self,
        texts: Sequence[str],
        *,
        cancel: Cancel | None = None,
        batch_size: int | None = None,
    ) -> Vectors:
        """Embed `texts` (in order) as an (n, DIMENSIONS) float32 matrix of unit rows.

        With a `cancel`, a fired deadline terminates the ONNX run in progress and raises
        Cancelled."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        started = time.perf_counter()
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        # Similar lengths together keep padding, and so wasted work, small.
        order = np.argsort(lengths, kind="stable")
        size = batch_size or self.batch_size
        start = 0
        while start < len(order):
            if cancel is not None:
                cancel.raise_if_cancelled()
            rows = order[start : start + size]
            width = int(lengths[rows].max())
            if self.batch_tokens and len(rows) * width > self.batch_tokens:
                rows = rows[: max(1, self.batch_tokens // width)]
                width = int(lengths[rows].max())
            start += len(rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                enc = encodings[row]
                ids[i, : len(enc.ids)] = enc.ids
                mask[i, : len(enc.ids)] = 1
            out[rows] = self._run(ids, mask, cancel)
        elapsed = time.perf_counter() - started
        for observe in list(self.observers):
            observe(elapsed)
        return out

    def _run(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64], cancel: Cancel | None
    ) -> Vectors:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        run_options = ort.RunOptions()
        unregister: Callable[[], None] = lambda: None  # noqa: E731
        if cancel is not None:
            unregister = cancel.on_cancel(lambda: setattr(run_options, "terminate", True))
        try:
            (hidden,) = self.session.run(["last_hidden_state"], feeds, run_options)
        except Exception:
            if cancel is not None and cancel.cancelled:
                raise Cancelled() from None
            raise
        finally:
            unregister()
        if cancel is not None:
            cancel.raise_if_cancelled()
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
