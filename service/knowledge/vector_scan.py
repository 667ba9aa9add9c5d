"""The k best cosines over the snapshot's matrix: an int8 first pass, then exact float32.

A query's semantic retrieval reads every chunk's vector. In float32 that is 1.5 KB per
chunk, 154 MB per query at 100k chunks, and the product is bound by memory bandwidth
(~16 ms here). So the snapshot also keeps an int8 copy of the matrix (a quarter of the
bytes: one int8 per dimension plus one float32 scale per row), which the compiled module
(_vectorscan.c) scans in ~3 ms. The `SHORTLIST_FACTOR * k` best rows by that first pass
are then scored exactly in float32, and the error of the first pass is bounded, so the
result is the exact top k, not an approximation:

for a row `v = s·a + e` (its int8 codes `a`, scale `s`, rounding residual `e`) and the
query `q = t·b + f`, the first pass computes `s·t·(a·b)`, which differs from `v·q` by
`s·a·f + e·q`, at most `|s·a|·|f| + |e|·|q|` (Cauchy-Schwarz). With `bound` the largest
such value over the rows and `kth` the k-th best exact score among the shortlist, every
row of the true top k has a first-pass score of at least `kth - bound`. When every row
outside the shortlist scores below that, the shortlist holds the true top k; otherwise
every row at or above it is rescored (a few hundred more rows, on crowded scores).

Where the compiled module is absent (no C compiler at install) no int8 copy is made and
the scan is the float32 product over the whole matrix, with the same results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

from service.optional_module import import_optional

_log = logging.getLogger(__name__)

# First-pass candidates rescored exactly, per result asked for.
SHORTLIST_FACTOR = 4
# Slack for float32 rounding: of the rescored dot products (384 terms) and of the first
# pass's two products; both are far below it.
ROUNDING = 1e-4
# Below this many rows the float32 product is the cheaper scan: the matrix (12 MB at this
# size) is read faster than the first pass's extra steps cost (~0.1-0.2 ms measured).
SMALL_MATRIX_ROWS = 8192
# Rows quantised at a time (bounds the float temporaries while a snapshot loads).
QUANTIZE_BLOCK = 8192

Rows = npt.NDArray[np.intp]
Scores = npt.NDArray[np.float32]


class Int8Kernel(Protocol):
    """What _vectorscan.c offers."""

    def scan(
        self,
        codes: npt.NDArray[np.int8],
        query: npt.NDArray[np.int8],
        scales: npt.NDArray[np.float32],
        query_scale: float,
        out: npt.NDArray[np.float32],
        /,
    ) -> None:
        """`out[r] = scales[r] * query_scale * dot(codes[r], query)` for every row."""
        ...


def load() -> Int8Kernel | None:
    """The compiled module, or None (said once, in a debug log) where it is absent."""
    module = import_optional(
        "service.knowledge._vectorscan",
        _log,
        "cosine scan: compiled int8 pass not built, scanning float32 only",
    )
    return None if module is None else cast(Int8Kernel, module)


kernel = load()


@dataclass(frozen=True)
class Int8Vectors:
    """The int8 copy of a matrix of vectors, and what bounds its rounding."""

    codes: npt.NDArray[np.int8]  # (rows, dims), each row scaled so its largest is ±127
    scales: npt.NDArray[np.float32]  # (rows,): the row is about scales[r] * codes[r]
    error: float  # the largest |v - scale·codes| of a row
    norm: float  # the largest |scale·codes| of a row

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.scales.nbytes)


def quantize(matrix: npt.NDArray[np.float32]) -> Int8Vectors:
    """The int8 copy of `matrix` (one scale per row)."""
    rows, dims = matrix.shape
    codes = np.empty((rows, dims), dtype=np.int8)
    scales = np.empty(rows, dtype=np.float32)
    error = norm = 0.0
    for start in range(0, rows, QUANTIZE_BLOCK):
        part = matrix[start : start + QUANTIZE_BLOCK]
        scale = (np.abs(part).max(axis=1) / np.float32(127)).astype(np.float32)
        safe = np.where(scale > 0, scale, np.float32(1))
        block = np.clip(np.rint(part / safe[:, None]), -127, 127)
        codes[start : start + len(part)] = block
        scales[start : start + len(part)] = scale
        restored = block.astype(np.float64) * scale.astype(np.float64)[:, None]
        error = max(error, float(np.linalg.norm(part - restored, axis=1).max()))
        norm = max(norm, float(np.linalg.norm(restored, axis=1).max()))
    return Int8Vectors(codes=codes, scales=scales, error=error, norm=norm)


def first_pass(
    compact: Int8Vectors, vector: npt.NDArray[np.float32], scan: Int8Kernel
) -> tuple[Scores, float]:
    """Every row's approximate cosine with `vector`, and the most any is off by."""
    peak = float(np.abs(vector).max()) if vector.size else 0.0
    scale = np.float32(peak / 127) if peak > 0 else np.float32(1)
    query = np.clip(np.rint(vector / scale), -127, 127).astype(np.int8)
    residual = float(np.linalg.norm(vector - query.astype(np.float64) * float(scale)))
    out = np.empty(compact.scales.shape[0], dtype=np.float32)
    scan.scan(compact.codes, query, compact.scales, float(scale), out)
    bound = compact.norm * residual + compact.error * float(np.linalg.norm(vector)) + ROUNDING
    return out, bound


def top_rows(
    matrix: npt.NDArray[np.float32],
    compact: Int8Vectors | None,
    vector: npt.NDArray[np.float32],
    k: int,
    mask: npt.NDArray[np.bool_] | None = None,
) -> tuple[Rows, Scores]:
    """The rows of the `k` highest cosines with `vector` (rows where `mask` is False left
    out, so fewer when fewer pass) and those cosines in float32, best first, equal scores
    by row. With `compact` (and the compiled kernel) the int8 first pass picks the rows to
    score exactly; the result is the same either way."""
    total = matrix.shape[0]
    k = min(k, total)
    shortlist = k * SHORTLIST_FACTOR
    scan = kernel
    if k <= 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
    if compact is None or scan is None or total <= max(shortlist, SMALL_MATRIX_ROWS):
        scores = matrix @ vector
        if mask is not None:
            scores[~mask] = -np.inf
        rows = np.argpartition(-scores, k - 1)[:k] if k < total else np.arange(total)
        return _best(rows, scores[rows], k)
    approx, bound = first_pass(compact, vector, scan)
    if mask is not None:
        approx[~mask] = -np.inf
    rows = np.argpartition(-approx, shortlist - 1)[:shortlist]
    exact = _exact(matrix, vector, rows, approx)
    kth = -np.partition(-exact, k - 1)[k - 1]
    # Rows outside the shortlist score at most its lowest first-pass score. When fewer
    # than k rows pass the mask they are all in the shortlist (kth is then -inf).
    if np.isfinite(kth) and approx[rows].min() >= kth - bound:
        rows = np.flatnonzero(approx >= kth - bound)
        exact = _exact(matrix, vector, rows, approx)
    return _best(rows, exact, k)


def _exact(
    matrix: npt.NDArray[np.float32], vector: npt.NDArray[np.float32], rows: Rows, approx: Scores
) -> Scores:
    """The float32 cosines of `rows`; -inf for the rows the mask left out."""
    exact: Scores = matrix[rows] @ vector
    exact[~np.isfinite(approx[rows])] = -np.inf
    return exact


def _best(rows: Rows, scores: Scores, k: int) -> tuple[Rows, Scores]:
    """The `k` best of `rows` by `scores`, best first, equal scores by row; rows the mask
    left out (-inf) and rows without a score (NaN) are dropped."""
    order = np.lexsort((rows, -scores))[:k]
    order = order[np.isfinite(scores[order])]
    return rows[order], scores[order]
