"""The cosine scan (service/knowledge/vector_scan.py): the int8 first pass plus exact
float32 rescoring returns exactly the top k that the float32 product over every row
returns, on random vectors, on crowded scores where the int8 order is wrong, and with
filters; the compiled kernel computes exactly the integer arithmetic it claims; where the
module is absent the float32 path answers alone, and says so in one debug line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.knowledge import store, vector_scan
from service.knowledge.search import Query, semantic
from service.knowledge.service import KnowledgeService
from service.knowledge.store import VectorSnapshot
from service.knowledge.vector_scan import Int8Kernel, first_pass, quantize, top_rows

DIMS = 384
# Cosines closer than this are equal up to float32 rounding (of a 384-term dot product).
TIE = 1e-6


@pytest.fixture(autouse=True, scope="module")
def _int8_pass_at_any_size() -> Iterator[None]:
    """These tests are about the int8 first pass: take it whatever the matrix's size (the
    service skips it for small matrices, where the float32 product is cheaper)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vector_scan, "SMALL_MATRIX_ROWS", 0)
        yield


def _kernel() -> Int8Kernel:
    scan = vector_scan.kernel
    assert scan is not None, "the compiled int8 scan is not built (make dev needs gcc)"
    return scan


def _unit(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    out = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    return out.astype(np.float32)


def _random(rng: np.random.Generator, rows: int) -> npt.NDArray[np.float32]:
    return _unit(rng.standard_normal((rows, DIMS)))


def _crowded(rng: np.random.Generator, rows: int, spread: float) -> npt.NDArray[np.float32]:
    """Rows all close to one direction: their cosines with it differ by less than the int8
    rounding, so the first pass orders them wrongly."""
    centre = rng.standard_normal(DIMS)
    return _unit(centre + spread * rng.standard_normal((rows, DIMS)))


def _assert_exact_top(
    rows: npt.NDArray[np.intp],
    matrix: npt.NDArray[np.float32],
    query: npt.NDArray[np.float32],
    k: int,
    mask: npt.NDArray[np.bool_] | None = None,
) -> None:
    """`rows` are the k best rows by cosine, best first (the mask's rows only). Scores
    closer than float32 rounding (TIE) may come in either order."""
    truth = matrix.astype(np.float64) @ query.astype(np.float64)
    allowed = truth if mask is None else truth[mask]
    best = np.sort(allowed)[::-1][:k]
    assert len(set(rows.tolist())) == len(rows) == len(best)
    assert mask is None or bool(mask[rows].all())
    np.testing.assert_allclose(truth[rows], best, rtol=0, atol=TIE)


def _assert_same_ranking(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    """Two (id, score) lists rank alike: the same scores, the same ids wherever a score is
    not within rounding (TIE) of its neighbours'."""
    assert len(a) == len(b)
    scores = np.array([s for _i, s in a])
    np.testing.assert_allclose(scores, [s for _i, s in b], rtol=0, atol=TIE)
    gaps = np.abs(np.diff(scores))
    alone = np.ones(len(a), dtype=bool)
    alone[:-1] &= gaps > TIE
    alone[1:] &= gaps > TIE
    assert [i for (i, _s), keep in zip(a, alone, strict=True) if keep] == [
        i for (i, _s), keep in zip(b, alone, strict=True) if keep
    ]


def _integer_reference(
    codes: npt.NDArray[np.int8],
    query: npt.NDArray[np.int8],
    scales: npt.NDArray[np.float32],
    query_scale: float,
) -> npt.NDArray[np.float32]:
    """What the kernel must compute: the int32 dot products, times the scales (in the
    kernel's order of float32 products)."""
    dots = (codes.astype(np.int32) @ query.astype(np.int32)).astype(np.float32)
    result: npt.NDArray[np.float32] = (scales * np.float32(query_scale)) * dots
    return result


def test_the_compiled_scan_is_built_by_make_dev() -> None:
    # The comparisons below are only worth something where the module exists.
    assert vector_scan.load() is not None


@pytest.mark.parametrize(("rows", "dims"), [(0, 384), (1, 384), (1000, 384), (37, 7), (5, 385)])
def test_the_kernel_computes_the_integer_dot_products_exactly(rows: int, dims: int) -> None:
    rng = np.random.default_rng(rows * 1000 + dims)
    codes = rng.integers(-127, 128, (rows, dims), dtype=np.int8)
    query = rng.integers(-127, 128, dims, dtype=np.int8)
    # The extremes too: the largest sum a row can reach must not overflow.
    if rows:
        codes[0] = 127
        query[:] = 127
    scales = rng.random(rows, dtype=np.float32)
    out = np.empty(rows, dtype=np.float32)
    _kernel().scan(codes, query, scales, 0.25, out)
    assert np.array_equal(out, _integer_reference(codes, query, scales, 0.25))


def test_the_kernel_refuses_buffers_that_do_not_fit_together() -> None:
    scan = _kernel()
    codes = np.zeros((4, 8), dtype=np.int8)
    query = np.zeros(8, dtype=np.int8)
    scales = np.ones(4, dtype=np.float32)
    with pytest.raises(ValueError, match="codes must hold"):
        scan.scan(codes, np.zeros(7, dtype=np.int8), scales, 1.0, np.empty(4, np.float32))
    with pytest.raises(ValueError, match="scales and out"):
        scan.scan(codes, query, scales, 1.0, np.empty(3, np.float32))
    with pytest.raises(ValueError, match="query must hold"):
        scan.scan(codes, np.zeros(0, dtype=np.int8), scales, 1.0, np.empty(4, np.float32))
    with pytest.raises(TypeError):
        scan.scan(codes, query, scales, 1.0, b"read-only bytes!")  # type: ignore[arg-type]
    # A strided view is not a contiguous buffer: refused, not read past its rows.
    with pytest.raises(ValueError, match="contiguous"):
        scan.scan(np.zeros((4, 16), np.int8)[:, ::2], query, scales, 1.0, np.empty(4, np.float32))


@pytest.mark.parametrize("kind", ["random", "crowded", "one large dimension"])
def test_the_first_pass_is_never_further_off_than_its_bound(kind: str) -> None:
    rng = np.random.default_rng(7)
    if kind == "random":
        matrix = _random(rng, 3000)
    elif kind == "crowded":
        matrix = _crowded(rng, 3000, 0.01)
    else:
        raw = rng.standard_normal((3000, DIMS))
        raw[:, 3] *= 40  # one dimension dominates every row, as some models' outliers do
        matrix = _unit(raw)
    compact = quantize(matrix)
    for query in _random(rng, 20):
        approx, bound = first_pass(compact, query, _kernel())
        off = np.abs(approx.astype(np.float64) - matrix.astype(np.float64) @ query)
        assert off.max() <= bound


def test_crowded_scores_still_give_the_exact_top_k() -> None:
    rng = np.random.default_rng(11)
    matrix = _crowded(rng, 4000, 0.02)
    query = _unit(matrix[:50].mean(axis=0))
    compact = quantize(matrix)
    approx, _bound = first_pass(compact, query, _kernel())
    truth = np.argsort(-(matrix.astype(np.float64) @ query.astype(np.float64)))[:10]
    shortlist = np.argsort(-approx)[: 10 * vector_scan.SHORTLIST_FACTOR]
    # The case is worth testing: the int8 order alone gives other rows, and the shortlist
    # misses some of the true ten (so the bound must widen it).
    with pytest.raises(AssertionError):
        _assert_exact_top(shortlist[:10], matrix, query, 10)
    assert not set(truth.tolist()) <= set(shortlist.tolist())
    rows, scores = top_rows(matrix, compact, query, 10)
    _assert_exact_top(rows, matrix, query, 10)
    assert np.array_equal(scores, (matrix[rows] @ query))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 3000),
    k=st.integers(1, 120),
    spread=st.sampled_from([None, 0.3, 0.02, 0.001]),
    kept=st.sampled_from([None, 1.0, 0.3, 0.01, 0.0]),
)
def test_the_int8_path_returns_what_the_float32_path_returns(
    seed: int, rows: int, k: int, spread: float | None, kept: float | None
) -> None:
    rng = np.random.default_rng(seed)
    matrix = _random(rng, rows) if spread is None else _crowded(rng, rows, spread)
    query = _random(rng, 1)[0]
    mask = None if kept is None else rng.random(rows) < kept
    fast_rows, fast_scores = top_rows(matrix, quantize(matrix), query, k, mask)
    float_rows, float_scores = top_rows(matrix, None, query, k, mask)
    _assert_exact_top(fast_rows, matrix, query, k, mask)
    _assert_same_ranking(
        list(zip(fast_rows.tolist(), fast_scores.tolist(), strict=True)),
        list(zip(float_rows.tolist(), float_scores.tolist(), strict=True)),
    )


def test_a_small_matrix_is_scanned_in_float32_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector_scan, "SMALL_MATRIX_ROWS", 2000)
    rng = np.random.default_rng(5)
    matrix = _random(rng, 1500)
    query = _random(rng, 1)[0]
    compact = quantize(matrix)
    expected = top_rows(matrix, None, query, 10)

    class Refuses:
        def scan(self, *args: object) -> None:
            raise AssertionError("the int8 pass ran on a small matrix")

    monkeypatch.setattr(vector_scan, "kernel", Refuses())
    rows, scores = top_rows(matrix, compact, query, 10)
    assert rows.tolist() == expected[0].tolist()
    assert scores.tolist() == expected[1].tolist()
    # Past the threshold the first pass runs (and this kernel refuses it).
    monkeypatch.setattr(vector_scan, "SMALL_MATRIX_ROWS", 1000)
    with pytest.raises(AssertionError, match="int8 pass ran"):
        top_rows(matrix, compact, query, 10)


def _snapshot(rng: np.random.Generator, rows: int) -> VectorSnapshot:
    matrix = _random(rng, rows)
    return VectorSnapshot(
        generation=1,
        ids=np.arange(10, 10 + 3 * rows, 3, dtype=np.int64),
        matrix=matrix,
        repo_codes=(np.arange(rows) % 3).astype(np.int32),
        kind_codes=np.zeros(rows, dtype=np.int32),
        paths=[f"src/f{i % 50}.py" for i in range(rows)],
        roles=["definition"] * rows,
        symbols=[f"f{i}" for i in range(rows)],
        repos={"a": 0, "b": 1, "c": 2},
        kinds={"code": 0},
        chunks=rows,
        int8=quantize(matrix),
    )


@pytest.mark.parametrize(
    "query",
    [Query("q"), Query("q", repo="b"), Query("q", path_prefix="src/f1"), Query("q", repo="x")],
    ids=["all", "repo", "path prefix", "no such repo"],
)
def test_semantic_search_gives_the_same_hits_without_the_compiled_scan(
    query: Query, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    snapshot = _snapshot(rng, 2500)
    vectors = _random(rng, 5)
    fast = [semantic(snapshot, v, query, limit=100) for v in vectors]
    monkeypatch.setattr(vector_scan, "kernel", None)
    plain = [semantic(snapshot, v, query, limit=100) for v in vectors]
    for fast_hits, plain_hits in zip(fast, plain, strict=True):
        _assert_same_ranking(fast_hits, plain_hits)
        assert len(fast_hits) == (0 if query.repo == "x" else 100)


def test_a_loaded_snapshot_carries_the_int8_copy_only_with_the_kernel(
    service: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    with service.pool.borrow() as conn:
        snapshot = store.load_snapshot(conn)
        assert snapshot.int8 is not None
        assert snapshot.int8.codes.shape == snapshot.matrix.shape
        assert snapshot.int8.nbytes == snapshot.size * (snapshot.matrix.shape[1] + 4)
        monkeypatch.setattr(vector_scan, "kernel", None)
        assert store.load_snapshot(conn).int8 is None


def test_an_absent_module_is_said_in_one_debug_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # None in sys.modules makes the import fail, as on a machine that did not build it.
    monkeypatch.setitem(sys.modules, "service.knowledge._vectorscan", None)
    with caplog.at_level(logging.DEBUG, logger="service.knowledge.vector_scan"):
        assert vector_scan.load() is None
    assert [record.getMessage() for record in caplog.records] == [
        "cosine scan: compiled int8 pass not built, scanning float32 only"
    ]
