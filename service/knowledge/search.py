"""One scry: retrieval (code-aware BM25, cosine over the in-memory matrix, or both) then
the ranking stage (ranking.py).

Retrieval gathers candidates: the `settings.candidates` best chunks by BM25 (lexical.py)
and by cosine, plus the chunks that define an identifier the query names. In hybrid mode
every candidate gets both scores (a BM25-only candidate's cosine is looked up in the
matrix). Ranking blends them, applies priors, boosts and per-file diversity, and scores
the hits relative to the best one. Ties break on the chunk id, so equal inputs give equal
outputs.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.cancel import Cancel
from service.knowledge import store
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import TextEmbedder
from service.knowledge.lexical import FieldWeights, defining, prepare_match
from service.knowledge.lexical import search as lexical_search
from service.knowledge.ranking import Candidate, Intent, analyse, rank, symbol_match
from service.knowledge.scry_models import Mode
from service.knowledge.store import (
    ChunkMeta,
    ChunkRow,
    VectorSnapshot,
    chunk_meta,
    fetch_chunks,
)
from service.knowledge.vector_scan import top_rows

MODES: tuple[Mode, ...] = ("hybrid", "lexical", "semantic")
# Chunks defining a named identifier added to the candidates (a name defined in more places
# than this is common enough for BM25 to find its definitions anyway).
DEFINITIONS_PER_NAME = 20
DEFINITION_SCAN = 500  # chunks naming it scanned for the best definitions of a name
FIELD_WEIGHTS = FieldWeights()


@dataclass(frozen=True)
class Query:
    """One search: text, mode, how many, and filters."""

    text: str
    mode: Mode = "hybrid"
    limit: int = 10
    min_score: float | None = None
    repo: str | None = None
    kind: str | None = None
    path_prefix: str | None = None
    # The text's embedding when the caller already has it (a federating node sends it).
    vector: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Hit:
    """A found chunk, its score in the query's mode and the modes that found it."""

    chunk: ChunkRow
    score: float
    modes: tuple[str, ...]


Ranked = list[tuple[int, float]]  # (chunk id, score), best first


def lexical(
    conn: sqlite3.Connection,
    match: str | None,
    query: Query,
    *,
    limit: int,
) -> Ranked:
    """Field-weighted BM25 ranking (higher is better) with the query's filters."""
    where, params = _filters(query)
    return lexical_search(
        conn, match, weights=FIELD_WEIGHTS, limit=limit, where=where, params=params
    )


def _filters(query: Query) -> tuple[str, list[str]]:
    clauses: list[str] = []
    params: list[str] = []
    if query.repo is not None:
        clauses.append("AND c.repo = ?")
        params.append(query.repo)
    if query.kind is not None:
        clauses.append("AND c.kind = ?")
        params.append(query.kind)
    if query.path_prefix:
        clauses.append("AND substr(c.path, 1, ?) = ?")
        params.extend([str(len(query.path_prefix)), query.path_prefix])
    return " ".join(clauses), params


def semantic(
    snapshot: VectorSnapshot,
    vector: npt.NDArray[np.float32],
    query: Query,
    *,
    limit: int,
) -> Ranked:
    """Cosine top-k over unit vectors (vector_scan.py), filters as a mask."""
    if snapshot.size == 0 or limit <= 0:
        return []
    mask = snapshot.mask(repo=query.repo, kind=query.kind, path_prefix=query.path_prefix)
    # Rows are in chunk id order, so equal scores come out by chunk id.
    rows, scores = top_rows(snapshot.matrix, snapshot.int8, vector, limit, mask)
    return list(zip(snapshot.ids[rows].tolist(), scores.tolist(), strict=True))


def run_query(
    conn: sqlite3.Connection,
    snapshot: VectorSnapshot,
    embedder: TextEmbedder,
    query: Query,
    settings: KnowledgeSettings,
    cancel: Cancel | None = None,
    *,
    executor: Executor | None = None,
) -> list[Hit]:
    """Run `query` in its mode and return at most `query.limit` ranked hits (with an
    `executor`, the query's embedding and cosine scan run there while BM25 runs here)."""
    features = settings.ranking.features()
    intent = analyse(query.text)
    candidates = retrieve(
        conn, snapshot, embedder, query, settings, intent, cancel, executor=executor
    )
    ranked = rank(candidates, intent, mode=query.mode, limit=query.limit, features=features)
    if query.min_score is not None:
        ranked = [c for c in ranked if c.score >= query.min_score]
    rows = fetch_chunks(conn, [c.id for c in ranked])
    return [Hit(rows[c.id], c.score, c.modes) for c in ranked if c.id in rows]


def retrieve(
    conn: sqlite3.Connection,
    snapshot: VectorSnapshot,
    embedder: TextEmbedder,
    query: Query,
    settings: KnowledgeSettings,
    intent: Intent,
    cancel: Cancel | None = None,
    *,
    executor: Executor | None = None,
) -> list[Candidate]:
    """The candidates of `query`: the `settings.candidates` best chunks by BM25 and/or by
    cosine (per its mode), plus the chunks defining an identifier the query names."""
    depth = max(query.limit, settings.candidates)
    lexical_hits: Ranked = []
    semantic_hits: Ranked = []

    def vector_side() -> tuple[npt.NDArray[np.float32], Ranked]:
        # Embedded even for an index without vectors yet: a query costs the same whatever
        # the index holds (the deadline and gate tests rely on it).
        vector = query.vector
        if vector is None:
            vector = embedder.embed([query.text], cancel=cancel)[0]
        return vector, semantic(snapshot, vector, query, limit=depth)

    # The query's embedding and the cosine scan are most of a hybrid query's time and need
    # no database: with an executor they run on another core while BM25 runs on this one.
    pending: Future[tuple[npt.NDArray[np.float32], Ranked]] | None = None
    if executor is not None and query.mode == "hybrid":
        pending = executor.submit(vector_side)
    if query.mode in ("hybrid", "lexical"):
        match = prepare_match(
            conn,
            query.text,
            # The vector count is free; an index without vectors yet is counted.
            total=snapshot.size or store.counts(conn)[1] or 1,
            max_df_ratio=settings.max_df_ratio,
            max_terms=settings.max_query_terms,
            max_postings=settings.max_postings,
        )
        lexical_hits = lexical(conn, match, query, limit=depth)
    if cancel is not None:
        cancel.raise_if_cancelled()
    # The database work that does not need the vector side's answer runs before joining it.
    defined: list[int] = []
    if settings.ranking.definitions and query.mode != "semantic":
        where, params = _filters(query)
        for name in [intent.symbol] if intent.symbol else intent.embedded:
            found = defining(conn, name, limit=DEFINITION_SCAN, where=where, params=params)
            found.sort(key=lambda f: (-symbol_match(f[1], name, intent.qualified), f[0]))
            defined += [chunk_id for chunk_id, _symbols in found[:DEFINITIONS_PER_NAME]]
    meta = chunk_meta(conn, {c for c, _s in lexical_hits} | set(defined))
    vector = query.vector
    if query.mode in ("hybrid", "semantic"):
        vector, semantic_hits = pending.result() if pending is not None else vector_side()
        meta |= chunk_meta(conn, {c for c, _s in semantic_hits} - meta.keys())
    if cancel is not None:
        cancel.raise_if_cancelled()
    candidates = _candidates(meta, lexical_hits, semantic_hits, defined)
    if query.mode == "hybrid" and vector is not None:
        _fill_cosines(candidates, snapshot, vector, semantic_hits)
    return list(candidates.values())


def _candidates(
    meta: dict[int, ChunkMeta], lexical_hits: Ranked, semantic_hits: Ranked, defined: list[int]
) -> dict[int, Candidate]:
    """Every retrieved chunk that still exists (is in `meta`) once, with its scores scaled
    to 0..1 within its list."""
    found: dict[int, Candidate] = {}
    top = lexical_hits[0][1] if lexical_hits else 0.0
    for chunk_id, score in lexical_hits:
        if chunk_id in meta:
            c = found[chunk_id] = Candidate(chunk_id, *meta[chunk_id])
            c.lexical = score / top if top > 0 else 0.0
            c.modes = ("lexical",)
    for chunk_id in defined:
        if chunk_id in meta and chunk_id not in found:
            found[chunk_id] = Candidate(chunk_id, *meta[chunk_id], modes=("lexical",))
    if semantic_hits:
        high, low = semantic_hits[0][1], semantic_hits[-1][1]
        for chunk_id, cosine in semantic_hits:
            if chunk_id not in meta:
                continue
            c = found.get(chunk_id) or found.setdefault(
                chunk_id, Candidate(chunk_id, *meta[chunk_id])
            )
            c.semantic = _scale(cosine, high, low)
            c.modes = tuple(sorted({*c.modes, "semantic"}))
    return found


def _fill_cosines(
    candidates: dict[int, Candidate],
    snapshot: VectorSnapshot,
    vector: npt.NDArray[np.float32],
    semantic_hits: Ranked,
) -> None:
    """Lexical-only candidates get their real cosine too (one row lookup each), on the
    same scale as the semantic list's. A chunk with no vector yet (the embedding pass has
    not reached it) takes its lexical score as its semantic one: the blend neither helps
    nor hurts it, so an index being embedded ranks as lexical search would."""
    missing = [c for c in candidates.values() if "semantic" not in c.modes]
    if not missing:
        return
    present = [False] * len(missing)
    cosines = [0.0] * len(missing)
    if semantic_hits and snapshot.size:
        ids = np.array([c.id for c in missing], dtype=np.int64)
        pos = np.minimum(np.searchsorted(snapshot.ids, ids), snapshot.size - 1)
        present = (snapshot.ids[pos] == ids).tolist()
        cosines = (snapshot.matrix[pos] @ vector).tolist()
    high, low = (semantic_hits[0][1], semantic_hits[-1][1]) if semantic_hits else (0.0, 0.0)
    for c, ok, cosine in zip(missing, present, cosines, strict=True):
        c.semantic = _scale(cosine, high, low) if ok else c.lexical


def _scale(cosine: float, high: float, low: float) -> float:
    """Cosine to 0..1: the best chunk 1, the last candidate (and anything below) 0."""
    if high - low < 1e-9:
        return 1.0 if cosine >= high else 0.0
    return max(0.0, min(1.0, (cosine - low) / (high - low)))
