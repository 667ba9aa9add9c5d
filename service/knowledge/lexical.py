"""Code-aware BM25 over SQLite FTS5, fed pre-tokenized text.

Each chunk is indexed in four fields, each with its own BM25 weight:

| field | holds | for `middleware/cors_handler.go` |
|---|---|---|
| `terms` | the chunk's words, identifiers split and kept whole | `corshandler cors ...` |
| `symbol_terms` | the names the chunk defines, split the same way | `newcors new cors` |
| `name_terms` | the file name without its extension | `corshandler cors handler` |
| `path_terms` | the directories above it | `middleware` |

FTS5 (`porter unicode61`) then stems every token, so `completions` meets `completion`.
FTS5's bm25() adds the weighted counts of a word across fields before saturating them,
which makes a name or symbol match count like several body matches, as BM25F does.

Why FTS5 and not an in-memory BM25 (`bm25s`, a numpy inverted index): the index is one
SQLite file written in transactions, updated file by file as the tree changes, read by
several processes, and interruptible by a query's deadline; FTS5 keeps all of that, and
its ranking measured as well as plain BM25 on the code-search benchmark (BENCHMARKS.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from service.knowledge.tokens import query_tokens, tokenize, tokens_of_all

FIELDS = ("terms", "symbol_terms", "name_terms", "path_terms")
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"


@dataclass(frozen=True)
class FieldWeights:
    """BM25 weight of each field (tuned on the code-search development set)."""

    terms: float = 1.0
    symbols: float = 4.0
    name: float = 3.0
    path: float = 1.5

    def sql(self) -> str:
        return f"bm25(code_fts, {self.terms}, {self.symbols}, {self.name}, {self.path})"


@dataclass(frozen=True)
class ChunkTerms:
    """What the full-text index stores for one chunk."""

    terms: str
    symbol_terms: str
    name_terms: str
    path_terms: str


def chunk_terms(path: str, text: str, symbols: Sequence[str]) -> ChunkTerms:
    """The four indexed fields of a chunk of the file at `path` (relative, posix)."""
    pure = PurePosixPath(path)
    stem = pure.name.split(".", 1)[0] if not pure.name.startswith(".") else pure.name
    return ChunkTerms(
        terms=" ".join(tokenize(text)),
        symbol_terms=tokens_of_all(symbols),
        name_terms=tokens_of_all([stem]),
        path_terms=tokens_of_all(pure.parts[:-1]),
    )


def _stems(conn: sqlite3.Connection, words: Sequence[str]) -> list[list[str]]:
    """The tokens the index's tokenizer makes of each word, found by letting SQLite
    tokenize them in a per-connection temporary FTS5 table."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_words "
        f"USING fts5(word, tokenize='{FTS_TOKENIZER}')"
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


def prepare_match(
    conn: sqlite3.Connection,
    text: str,
    *,
    total: int,
    max_df_ratio: float,
    max_terms: int,
    max_postings: int = 1 << 62,
) -> str | None:
    """An FTS5 MATCH expression for free text, or None if nothing in it can match.

    The query is tokenized like the chunks (identifiers split and kept whole, stopwords
    dropped). Every token is quoted (so `AND`, `*`, `:`, `"` or `NEAR(` typed by a user are
    just words) and the tokens are OR-ed. Tokens found in more than `max_df_ratio` of the
    chunks are dropped, using the FTS5 vocabulary, because OR-ing very common words is slow
    and adds little to the ranking; if every token is that common the rarest ones stay;
    and once the kept tokens' postings pass `max_postings`, the commoner ones go too."""
    tokens = query_tokens(text)[:64]
    if not tokens:
        return None
    stems = _stems(conn, tokens)
    all_stems = sorted({s for ss in stems for s in ss})
    if not all_stems:
        return None
    marks = ",".join("?" * len(all_stems))
    df = dict(conn.execute(f"SELECT term, doc FROM code_vocab WHERE term IN ({marks})", all_stems))
    scored: list[tuple[int, int, str]] = []
    for i, (token, token_stems) in enumerate(zip(tokens, stems, strict=True)):
        freq = min((df.get(s, 0) for s in token_stems), default=0)
        if freq > 0:
            scored.append((freq, i, token))
    if not scored:
        return None
    scored.sort()
    limit = max(1, int(total * max_df_ratio))
    kept = [item for item in scored if item[0] <= limit][:max_terms] or scored[:2]
    # BM25 costs one scoring per posting: past a budget, the commonest tokens go (the two
    # rarest always stay). Small indexes never reach it; at 100k chunks it bounds latency.
    spent = 0
    for n, (freq, _i, _token) in enumerate(kept):
        spent += freq
        if spent > max_postings and n >= 2:
            kept = kept[:n]
            break
    kept = sorted(kept, key=lambda item: item[1])
    return " OR ".join('"' + token.replace('"', '""') + '"' for _f, _i, token in kept)


def search(
    conn: sqlite3.Connection,
    match: str | None,
    *,
    weights: FieldWeights,
    limit: int,
    where: str = "",
    params: Sequence[object] = (),
) -> list[tuple[int, float]]:
    """(chunk id, BM25 score) best first; `where` adds filters on `chunks c`."""
    if match is None or limit <= 0:
        return []
    rank = weights.sql()
    if where:
        sql = (
            f"SELECT f.rowid, -{rank} AS score FROM code_fts f JOIN chunks c ON c.id = f.rowid "
            f"WHERE code_fts MATCH ? {where} ORDER BY score DESC, f.rowid LIMIT ?"
        )
    else:
        sql = (
            f"SELECT rowid, -{rank} AS score FROM code_fts WHERE code_fts MATCH ? "
            "ORDER BY score DESC, rowid LIMIT ?"
        )
    return [(int(r), float(s)) for r, s in conn.execute(sql, [match, *params, limit])]


def defining(
    conn: sqlite3.Connection,
    name: str,
    *,
    limit: int,
    where: str = "",
    params: Sequence[object] = (),
) -> list[tuple[int, tuple[str, ...]]]:
    """(chunk id, symbols) of up to `limit` chunks whose symbols contain the identifier
    `name` (as a whole token): how a symbol query reaches its definition even when the
    body's words rank it low. The caller decides which of them define it best."""
    tokens = tokenize(name)
    if not tokens:
        return []
    # The whole identifier is the first token: require it in the symbols field.
    match = 'symbol_terms : "' + tokens[0].replace('"', '""') + '"'
    sql = (
        "SELECT f.rowid, c.symbols FROM code_fts f JOIN chunks c ON c.id = f.rowid "
        f"WHERE code_fts MATCH ? {where} LIMIT ?"
    )
    rows = conn.execute(sql, [match, *params, limit])
    return [(int(r), tuple(symbols.split())) for r, symbols in rows]
