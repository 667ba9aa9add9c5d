"""A query's embedding on the wire, so a federated scry embeds its query once.

Embedding the query is the dearest step of a hybrid scry (about 5 ms of CPU here). A node
that federates computes it once and sends it with the request; each mother that runs the
same model (same weights by SHA-256, same graph) uses it instead of embedding the text
again. A node with another model ignores it and embeds the text itself, so the field is
only ever an optimisation. The vector travels as base64 of little-endian float32: exact,
and a quarter of the size of a JSON list of floats.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
import numpy.typing as npt

from service.errors import BadRequest
from service.knowledge.model import DIMENSIONS, MODEL_ID, MODEL_SHA256
from service.knowledge.scry_models import QueryVector

Vector = npt.NDArray[np.float32]


def fingerprint(*, graph: str, model_id: str = MODEL_ID) -> str:
    """Names the model exactly enough that equal fingerprints give equal vectors (the
    graph too: each rounds differently, graphs.py)."""
    return f"{model_id}/{MODEL_SHA256[:16]}/{graph}"


def encode(vector: Vector, *, model: str) -> QueryVector:
    """The wire form of a unit vector from the model with fingerprint `model`."""
    raw = np.asarray(vector, dtype="<f4").tobytes()
    return QueryVector(model=model, f32le=base64.b64encode(raw).decode("ascii"))


def decode(sent: QueryVector, *, model: str) -> Vector | None:
    """The sent vector as a unit float32 array, or None when it comes from another model
    (the caller then embeds the text itself). A malformed vector is a 400."""
    if sent.model != model:
        return None
    try:
        raw = base64.b64decode(sent.f32le, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("query_vector.f32le is not base64") from None
    if len(raw) != DIMENSIONS * 4:
        raise BadRequest(f"query_vector must hold {DIMENSIONS} float32 values")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise BadRequest("query_vector must be finite and not zero")
    # Normalised here, so a sender's rounding cannot tilt cosine scores.
    unit: Vector = vector / np.float32(norm)
    return unit
