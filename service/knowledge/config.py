"""Settings of the knowledge domain (nested under `knowledge` in Settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class KnowledgeSettings(BaseModel):
    """Index location, indexing roots, model threads and fusion weights."""

    enabled: bool = Field(True, description="Load the index and the model at start.")
    index_path: Path | None = Field(None, description="SQLite index (data_dir/index.sqlite).")
    roots: list[Path] = Field(
        default_factory=list, description="Directories POST /api/index may index."
    )
    intra_op_threads: int = Field(2, ge=1, le=64, description="ONNX intra-op threads.")
    max_file_bytes: int = Field(1024 * 1024, ge=1, description="Files larger are skipped.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    lexical_weight: float = Field(1.0, ge=0)
    semantic_weight: float = Field(1.0, ge=0)
