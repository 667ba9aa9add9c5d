"""The ranking stage: turn the candidates of lexical and semantic retrieval into the list
an agent reads.

For each candidate chunk:

1. **Relevance**: its BM25 and cosine scores, each divided by the best of its list, blended
   with a weight that leans to BM25 for identifier queries (`SYMBOL_SEMANTIC_SHARE`) and
   balances both for questions in words (`TEXT_SEMANTIC_SHARE`).
2. **What it is** (`ROLE_PRIORS`): tests, examples, docs, config, plain text and import
   blocks are multiplied down, unless the query asks for them by name (`test`, `example`,
   `readme`, `config`, ...).
3. **Definitions**: for an identifier query (`StaticModel`, `bash_completions`,
   `Router.Handle`), a chunk that defines that name gains `DEFINITION_BOOST` (more when the
   file is named after it); an identifier inside a sentence gains half of it.
4. **Names**: a chunk whose file or directory name matches query words gains
   `NAME_BOOST` times the share of query words matched.
5. **Diversity**: results are picked greedily; each further chunk of a file already picked
   counts `SAME_FILE_DECAY` times less, so one file cannot fill the list.

Scores are then divided by the first result's, so the best hit scores 1.0 and scores never
increase down the list: `min_score` keeps the hits at least that fraction as relevant as
the best one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from service.knowledge.tokens import STOPWORDS, split_identifier

# Tuned on the code-search development set (bench/knowledge/code_search.py, BENCHMARKS.md).
SYMBOL_SEMANTIC_SHARE = 0.0
TEXT_SEMANTIC_SHARE = 0.5
ROLE_PRIORS: dict[str, float] = {
    "definition": 1.0,
    "code": 1.0,
    "commit": 1.0,
    "imports": 0.7,
    "exports": 0.5,
    "test": 0.1,
    "example": 0.35,
    "docs": 0.3,
    "config": 0.2,
    "text": 0.5,
}
DEFINITION_BOOST = 2.0
MEMBER_MATCH = 0.5
NAME_BOOST = 2.0
SAME_FILE_DECAY = 0.3

# Query words that ask for a role (then it is not demoted).
_ASKS_FOR: dict[str, frozenset[str]] = {
    "test": frozenset({"test", "tests", "testing", "spec", "specs", "mock", "mocks", "fixture"}),
    "example": frozenset({"example", "examples", "demo", "sample", "samples", "tutorial"}),
    "docs": frozenset({"docs", "readme", "guide", "changelog"}),
    "config": frozenset(
        {"config", "configuration", "settings", "yaml", "json", "toml", "dockerfile"}
    ),
}
_ASKS_FOR["text"] = _ASKS_FOR["docs"]
# `Router`, `bash_completions`, `HTTPException`, `Sinatra::Base`, `Router.Handle`, `_x`.
_QUALIFIED = re.compile(r"^[A-Za-z_$][\w$]*(?:(?:::|\.|->|#|\\)[A-Za-z_$][\w$]*)*$")
_EMBEDDED = re.compile(r"\b(?:[A-Z][a-z0-9]+[A-Z]\w*|[a-z][a-z0-9]*[A-Z]\w*|[a-z]+_\w+)\b")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Features:
    """Ranking features, each switchable (the benchmark's ablation turns them off)."""

    role_priors: bool = True
    definitions: bool = True
    names: bool = True
    diversity: bool = True


@dataclass(frozen=True)
class Intent:
    """What a query looks like it wants."""

    text: str
    symbol: str | None  # an identifier query's name (the last part of a qualified name)
    qualified: str | None  # `Router.Handle` for `Router::Handle`, when qualified
    identifier: bool  # the whole query is one identifier-like word
    embedded: tuple[str, ...]  # identifiers inside a sentence
    words: tuple[str, ...]  # content words, lowercased, for name matching
    asks_for: frozenset[str] = field(default_factory=frozenset)


def analyse(text: str) -> Intent:
    """Classify a query: one identifier, or words (possibly naming identifiers)."""
    stripped = text.strip()
    identifier = " " not in stripped and bool(_QUALIFIED.match(stripped))
    parts = re.split(r"::|\.|->|#|\\", stripped) if identifier else []
    symbol = parts[-1] if parts else None
    qualified = ".".join(parts) if len(parts) > 1 else None
    embedded = () if identifier else tuple(dict.fromkeys(_EMBEDDED.findall(stripped)))
    words = tuple(
        dict.fromkeys(
            w.lower() for w in _WORD.findall(stripped) if len(w) > 2 and w.lower() not in STOPWORDS
        )
    )
    lowered = {p for w in _WORD.findall(stripped) for p in split_identifier(w)}
    asks = frozenset(role for role, cues in _ASKS_FOR.items() if lowered & cues)
    return Intent(stripped, symbol, qualified, identifier, embedded, words, asks)


@dataclass
class Candidate:
    """A retrieved chunk with what ranking needs to know about it."""

    id: int
    path: str
    role: str
    symbols: tuple[str, ...]
    lexical: float = 0.0  # BM25 divided by the best BM25 of the query (0 if not found)
    semantic: float = 0.0  # cosine mapped to 0..1 within the query's candidates
    modes: tuple[str, ...] = ()
    score: float = 0.0


def relevance(candidate: Candidate, intent: Intent, *, mode: str) -> float:
    """Step 1: the blended retrieval score."""
    if mode == "lexical":
        return candidate.lexical
    if mode == "semantic":
        return candidate.semantic
    share = SYMBOL_SEMANTIC_SHARE if intent.identifier else TEXT_SEMANTIC_SHARE
    return share * candidate.semantic + (1 - share) * candidate.lexical


def role_prior(role: str, intent: Intent) -> float:
    """Step 2: how much a chunk of this role counts for this query."""
    if role in intent.asks_for:
        return 1.0
    return ROLE_PRIORS.get(role, 1.0)


def symbol_match(symbols: Sequence[str], name: str, qualified: str | None) -> float:
    """How well a chunk's symbols define `name`: 1 for the name itself (or the whole
    qualified name asked), MEMBER_MATCH for a member of that name (`Mux.Use` for `Use`),
    less for a different letter case. A leading `$` (a JavaScript convention) is ignored."""
    best = 0.0
    lowered = name.lower()
    for symbol in symbols:
        bare = symbol.lstrip("$")
        last = bare.rsplit(".", 1)[-1].lstrip("$")
        if bare == name or (qualified is not None and bare == qualified):
            return 1.0
        if last == name:
            best = max(best, MEMBER_MATCH)
        elif bare.lower() == lowered:
            best = max(best, 0.3)
        elif last.lower() == lowered:
            best = max(best, 0.15)
    return best


def definition_boost(candidate: Candidate, intent: Intent) -> float:
    """Step 3: a chunk defining the identifier the query names."""
    names = [intent.symbol] if intent.symbol else list(intent.embedded)
    if not names or not candidate.symbols:
        return 0.0
    scale = 1.0 if intent.symbol else 0.5
    stem = _squash(PurePosixPath(candidate.path).name.split(".", 1)[0])
    best = 0.0
    for name in names:
        hit = symbol_match(candidate.symbols, name, intent.qualified)
        # The file named after the definition is where a reader expects it.
        if hit and (_squash(name) == stem or _stem(_squash(name)) == _stem(stem)):
            hit *= 1.5
        best = max(best, hit)
    return DEFINITION_BOOST * scale * best


def name_boost(path: str, intent: Intent) -> float:
    """Step 4: share of query words found in the file's name or its directory's name."""
    words = intent.words if not intent.identifier else tuple(split_identifier(intent.text))
    if not words:
        return 0.0
    pure = PurePosixPath(path)
    parts = set(split_identifier(pure.name.split(".", 1)[0]))
    if len(pure.parts) > 1:
        parts.update(split_identifier(pure.parts[-2]))
    if not parts:
        return 0.0
    stems = {_stem(p) for p in parts}
    matched = sum(1 for w in words if any(_same_word(_stem(w), p) for p in stems))
    return NAME_BOOST * matched / len(words)


def rank(
    candidates: Sequence[Candidate],
    intent: Intent,
    *,
    mode: str,
    limit: int,
    features: Features = Features(),
) -> list[Candidate]:
    """Score and pick at most `limit` candidates; their `score` is relative to the best."""
    # A re-export counts as the definition only when the definition itself is not here.
    defined_here = features.definitions and any(
        c.role == "definition" and definition_boost(c, intent) >= DEFINITION_BOOST
        for c in candidates
    )
    for c in candidates:
        score = relevance(c, intent, mode=mode)
        if features.role_priors:
            score *= role_prior(c.role, intent)
        boost = 0.0
        reexport_only = c.role == "exports" and defined_here
        if features.definitions and c.role not in ("test", "example", "docs") and not reexport_only:
            boost += definition_boost(c, intent)
        if features.names and c.role not in ("docs", "text"):
            boost += name_boost(c.path, intent) * (role_prior(c.role, intent) ** 0.5)
        # Boosts lift chunks that retrieval found, in proportion to how well it found them.
        c.score = score * (1.0 + boost) + boost * 0.1
    ordered = sorted(candidates, key=lambda c: (-c.score, c.id))
    picked = _diverse(ordered, limit) if features.diversity else ordered[:limit]
    if picked and picked[0].score > 0:
        top = picked[0].score
        for c in picked:
            c.score = max(0.0, min(1.0, c.score / top))
    return picked


def _diverse(ordered: list[Candidate], limit: int) -> list[Candidate]:
    """Greedy pick where each further chunk of an already picked file counts less."""
    picked: list[Candidate] = []
    per_file: dict[str, int] = {}
    pool = list(ordered)
    while pool and len(picked) < limit:
        best_i, best_score = 0, float("-inf")
        for i, c in enumerate(pool):
            if c.score <= best_score:
                break  # sorted: nothing later can beat it, even undecayed
            effective = c.score * SAME_FILE_DECAY ** per_file.get(c.path, 0)
            if effective > best_score:
                best_i, best_score = i, effective
        chosen = pool.pop(best_i)
        chosen.score = best_score
        per_file[chosen.path] = per_file.get(chosen.path, 0) + 1
        picked.append(chosen)
    return picked


def _squash(name: str) -> str:
    return "".join(split_identifier(name))


def _same_word(word: str, part: str) -> bool:
    """Equal stems, or one stem (four letters at least) begins the other: `util` ~
    `utilit(y)`, `impl(s)` ~ `implement(ations)`, `config` ~ `configur(ation)`."""
    if word == part:
        return True
    short, long = (word, part) if len(word) <= len(part) else (part, word)
    return len(short) >= 4 and long.startswith(short)


_SUFFIXES = (
    "ations", "ation", "ions", "ion", "ings", "ing", "ers", "er", "ors", "or", "ies", "es",
    "ed", "ly", "s", "y", "e",
)  # fmt: skip


def _stem(word: str) -> str:
    """A light English stemmer for matching names: `streaming`, `streams` -> `stream`;
    `recovery`, `recoverer` -> `recover`; `formatting`, `formatter` -> `formatt`."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word
