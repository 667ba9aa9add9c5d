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
from concurrent.futures import Executor, wait
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.cancel import Cancel
from service.knowledge import store
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import TextEmbedder
from service.knowledge.lexical import FieldWeights, defining, prepare_match
from service.knowledge.lexical import search as lexical_search
from service.knowledge.ranking import (
    Candidate,
    Features,
    Intent,
    analyse,
    describe,
    rank,
    symbol_match,
)
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
# The query's vector, its cosine hits and what ranking needs of them.
VectorSide = tuple[npt.NDArray[np.float32], Ranked, dict[int, ChunkMeta]]


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
    `executor`, a hybrid query's BM25 runs there while its embedding runs here)."""
    features = settings.ranking.features()
    intent = analyse(query.text)
    candidates = retrieve(
        conn,
        snapshot,
        embedder,
        query,
        settings,
        intent,
        cancel,
        executor=executor,
        features=features,
    )
    while True:
        ranked = rank(candidates, intent, mode=query.mode, limit=query.limit, features=features)
        rows = fetch_chunks(conn, [c.id for c in ranked])
        gone = {c.id for c in ranked if c.id not in rows}
        if not gone:
            break
        # A semantic hit's chunk was deleted after the snapshot was loaded (its metadata
        # came from the snapshot): rank again without it, so the list stays full and the
        # scores stay relative to a best hit that exists.
        candidates = [c for c in candidates if c.id not in gone]
    if query.min_score is not None:
        ranked = [c for c in ranked if c.score >= query.min_score]
    return [Hit(rows[c.id], c.score, c.modes) for c in ranked]


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
    features: Features | None = None,
) -> list[Candidate]:
    """The candidates of `query`: the `settings.candidates` best chunks by BM25 and/or by
    cosine (per its mode), plus the chunks defining an identifier the query names."""
    depth = max(query.limit, settings.candidates)
    features = features or settings.ranking.features()

    def vector_side() -> VectorSide:
        # Embedded even for an index without vectors yet: a query costs the same whatever
        # the index holds (the deadline and gate tests rely on it).
        vector = query.vector
        if vector is None:
            vector = embedder.embed([query.text], cancel=cancel)[0]
        hits = semantic(snapshot, vector, query, limit=depth)
        # What ranking needs of the hits is in the snapshot: no database read after the
        # embedding, which is the longest step of a hybrid query.
        return vector, hits, snapshot.meta([c for c, _s in hits])

    def lexical_side() -> dict[int, Candidate]:
        lexical_hits: Ranked = []
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
        defined: list[int] = []
        if settings.ranking.definitions and query.mode != "semantic":
            where, params = _filters(query)
            for name in [intent.symbol] if intent.symbol else intent.embedded:
                defs = defining(conn, name, limit=DEFINITION_SCAN, where=where, params=params)
                defs.sort(key=lambda f: (-symbol_match(f[1], name, intent.qualified), f[0]))
                defined += [chunk_id for chunk_id, _symbols in defs[:DEFINITIONS_PER_NAME]]
        found = _lexical_candidates(
            chunk_meta(conn, {c for c, _s in lexical_hits} | set(defined)), lexical_hits, defined
        )
        # Ranking's steps that need no retrieval score are taken before the scores meet.
        for candidate in found.values():
            describe(candidate, intent, features)
        return found

    vector = query.vector
    semantic_hits: Ranked = []
    if query.mode == "hybrid" and executor is not None:
        # The embedding is most of a hybrid query's time and needs no database: it runs on
        # this thread while BM25 runs on another core. BM25 usually ends first, so this
        # thread goes on without waiting to be woken (a waiting thread's wake-up costs a
        # few hundred microseconds on a virtual machine).
        pending = executor.submit(lexical_side)
        try:
            vector, semantic_hits, semantic_meta = vector_side()
        finally:
            # The connection is this query's: the other thread is done with it before the
            # query returns or raises.
            wait([pending])
        found = pending.result()
        _add_semantic(found, semantic_meta, semantic_hits)
    else:
        found = lexical_side()
        if query.mode in ("hybrid", "semantic"):
            vector, semantic_hits, semantic_meta = vector_side()
            _add_semantic(found, semantic_meta, semantic_hits)
    if cancel is not None:
        cancel.raise_if_cancelled()
    if query.mode == "hybrid" and vector is not None:
        _fill_cosines(found, snapshot, vector, semantic_hits)
    return list(found.values())


def _lexical_candidates(
    meta: dict[int, ChunkMeta], lexical_hits: Ranked, defined: list[int]
) -> dict[int, Candidate]:
    """The BM25 hits and definitions that still exist (are in `meta`), once each, BM25
    scaled to 0..1 by the best."""
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
    return found


def _add_semantic(
    found: dict[int, Candidate], meta: dict[int, ChunkMeta], semantic_hits: Ranked
) -> None:
    """Give the cosine hits their scores (0..1 within the list), adding those not found
    lexically."""
    if not semantic_hits:
        return
    high, low = semantic_hits[0][1], semantic_hits[-1][1]
    for chunk_id, cosine in semantic_hits:
        c = found.get(chunk_id)
        if c is None:
            if chunk_id not in meta:
                continue
            c = found[chunk_id] = Candidate(chunk_id, *meta[chunk_id])
        c.semantic = _scale(cosine, high, low)
        c.modes = ("lexical", "semantic") if c.modes else ("semantic",)


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
        rows, found = snapshot.rows_of([c.id for c in missing])
        present = found.tolist()
        cosines = (snapshot.matrix[rows] @ vector).tolist()
    high, low = (semantic_hits[0][1], semantic_hits[-1][1]) if semantic_hits else (0.0, 0.0)
    for c, ok, cosine in zip(missing, present, cosines, strict=True):
        c.semantic = _scale(cosine, high, low) if ok else c.lexical


def _scale(cosine: float, high: float, low: float) -> float:
    """Cosine to 0..1: the best chunk 1, the last candidate (and anything below) 0."""
    if high - low < 1e-9:
        return 1.0 if cosine >= high else 0.0
    return max(0.0, min(1.0, (cosine - low) / (high - low)))
