"""Lexical (FTS5 BM25), semantic (cosine over the in-memory matrix) and hybrid search.

Hybrid fuses the two ranked lists with weighted reciprocal rank fusion:
score(d) = sum over modes of weight / (k + rank), divided by its maximum so a chunk ranked
first by every mode scores 1.0 and `min_score` means the same whatever the weights. Ties
break on the best single rank, then on the chunk id, so equal inputs give equal outputs.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.cancel import Cancel
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.scry_models import Mode
from service.knowledge.store import ChunkRow, VectorSnapshot, fetch_chunks

MODES: tuple[Mode, ...] = ("hybrid", "lexical", "semantic")
_WORD = re.compile(r"\w+")


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


def prepare_fts_query(
    conn: sqlite3.Connection, text: str, *, total: int, max_df_ratio: float, max_terms: int
) -> str | None:
    """An FTS5 MATCH expression for free text, or None if nothing in it can match.

    Every word is quoted (so `AND`, `*`, `:`, `"` or `NEAR(` typed by a user are just
    words) and the words are OR-ed. Words found in more than `max_df_ratio` of the chunks
    are dropped, using the FTS5 vocabulary, because OR-ing very common words is slow and
    adds nothing to the ranking; if every word is that common the rarest ones stay."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))[:64]
    if not words:
        return None
    stems = _stems(conn, words)
    all_stems = sorted({s for ss in stems for s in ss})
    marks = ",".join("?" * len(all_stems))
    df = dict(
        conn.execute(f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", all_stems)
    )
    scored: list[tuple[int, int, str]] = []
    for i, (word, word_stems) in enumerate(zip(words, stems, strict=True)):
        if not word_stems:
            continue
        # A word matches at most as many chunks as its rarest token (a quoted phrase).
        freq = min(df.get(s, 0) for s in word_stems)
        if freq > 0:
            scored.append((freq, i, word))
    if not scored:
        return None
    scored.sort()
    limit = max(1, int(total * max_df_ratio))
    kept = [item for item in scored if item[0] <= limit] or scored[:2]
    kept = sorted(kept[:max_terms], key=lambda item: item[1])
    return " OR ".join('"' + word.replace('"', '""') + '"' for _f, _i, word in kept)


def _stems(conn: sqlite3.Connection, words: Sequence[str]) -> list[list[str]]:
    """The tokens the index's tokenizer (porter unicode61) makes of each word, found by
    letting SQLite tokenize them in a per-connection temporary FTS5 table."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_words "
        "USING fts5(word, tokenize='porter unicode61')"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_words_v "
        "USING fts5vocab(temp, query_words, 'instance')"
    )
    conn.execute("DELETE FROM temp.query_words")
    conn.executemany(
        "INSERT INTO temp.query_words(rowid, word) VALUES (?, ?)",
        [(i + 1, w) for i, w in enumerate(words)],
    )
    out: list[list[str]] = [[] for _ in words]
    for term, doc in conn.execute("SELECT term, doc FROM temp.query_words_v ORDER BY doc, offset"):
        out[doc - 1].append(term)
    return out


def lexical(conn: sqlite3.Connection, match: str | None, query: Query, *, limit: int) -> Ranked:
    """BM25 ranking (FTS5 `rank`, higher is better after negation) with the filters."""
    if match is None or limit <= 0:
        return []
    where, params = _filters(query)
    if where:
        sql = (
            "SELECT f.rowid, -f.rank FROM chunks_fts f JOIN chunks c ON c.id = f.rowid "
            f"WHERE chunks_fts MATCH ? {where} ORDER BY f.rank, f.rowid LIMIT ?"
        )
    else:
        sql = (
            "SELECT rowid, -rank FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY rank, rowid LIMIT ?"
        )
    return [(int(r), float(s)) for r, s in conn.execute(sql, [match, *params, limit])]


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
    """Cosine top-k: one matrix-vector product over unit vectors, filters as a mask."""
    if snapshot.size == 0 or limit <= 0:
        return []
    scores = snapshot.matrix @ vector
    mask = snapshot.mask(repo=query.repo, kind=query.kind, path_prefix=query.path_prefix)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    k = min(limit, snapshot.size)
    top = np.argpartition(-scores, k - 1)[:k] if k < snapshot.size else np.arange(snapshot.size)
    # Best score first; equal scores by chunk id, so results never depend on partition order.
    top = top[np.lexsort((snapshot.ids[top], -scores[top]))]
    return [(int(snapshot.ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]


def fuse(
    lists: dict[str, Ranked], weights: dict[str, float], *, k: int
) -> list[tuple[int, float, tuple[str, ...]]]:
    """Weighted reciprocal rank fusion; (chunk id, normalised score, modes), best first."""
    fused: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    found: dict[int, list[str]] = {}
    for mode, ranked in lists.items():
        weight = weights.get(mode, 1.0)
        for rank, (chunk_id, _score) in enumerate(ranked, 1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
            best_rank[chunk_id] = min(best_rank.get(chunk_id, rank), rank)
            found.setdefault(chunk_id, []).append(mode)
    ceiling = sum(weights.get(m, 1.0) for m in lists) / (k + 1) or 1.0
    order = sorted(fused, key=lambda c: (-fused[c], best_rank[c], c))
    # min(): float rounding must not push a perfect score past 1.0.
    return [(c, min(1.0, fused[c] / ceiling), tuple(sorted(found[c]))) for c in order]


def run_query(
    conn: sqlite3.Connection,
    snapshot: VectorSnapshot,
    embedder: Embedder,
    query: Query,
    settings: KnowledgeSettings,
    cancel: Cancel | None = None,
) -> list[Hit]:
    """Run `query` in its mode and return at most `query.limit` hits."""
    lists: dict[str, Ranked] = {}
    depth = query.limit if query.mode != "hybrid" else max(query.limit, settings.candidates)
    if query.mode in ("hybrid", "lexical"):
        match = prepare_fts_query(
            conn,
            query.text,
            total=max(snapshot.size, 1),
            max_df_ratio=settings.max_df_ratio,
            max_terms=settings.max_query_terms,
        )
        lists["lexical"] = lexical(conn, match, query, limit=depth)
    if cancel is not None:
        cancel.raise_if_cancelled()
    if query.mode in ("hybrid", "semantic"):
        vector = query.vector
        if vector is None:
            vector = embedder.embed([query.text], cancel=cancel)[0]
        lists["semantic"] = semantic(snapshot, vector, query, limit=depth)
    if cancel is not None:
        cancel.raise_if_cancelled()
    if query.mode == "hybrid":
        weights = {"lexical": settings.lexical_weight, "semantic": settings.semantic_weight}
        ranked = fuse(lists, weights, k=settings.rrf_k)
    else:
        ranked = [(c, s, (query.mode,)) for c, s in lists[query.mode]]
    if query.min_score is not None:
        ranked = [r for r in ranked if r[1] >= query.min_score]
    ranked = ranked[: query.limit]
    rows = fetch_chunks(conn, [c for c, _s, _m in ranked])
    return [Hit(rows[c], s, m) for c, s, m in ranked if c in rows]
