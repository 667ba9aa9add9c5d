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

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.knowledge.tokens import STOPWORDS, split_identifier

# Tuned on the code-search development set (bench/knowledge/code_search.py, BENCHMARKS.md).
SYMBOL_SEMANTIC_SHARE = 0.2
TEXT_SEMANTIC_SHARE = 0.5
ROLE_PRIORS: dict[str, float] = {
    "definition": 1.0,
    "code": 1.0,
    "commit": 1.0,
    "imports": 1.0,
    "exports": 0.2,
    "test": 0.1,
    "example": 0.4,
    "docs": 0.3,
    "config": 0.2,
    "text": 0.5,
}
DEFINITION_BOOST = 3.0
MEMBER_MATCH = 0.5
CASE_MATCH = 0.3
EMBEDDED_SCALE = 1.0
FILE_NAMED_AFTER = 1.5
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
    words: tuple[str, ...]  # content words, lowercased
    asks_for: frozenset[str] = field(default_factory=frozenset)
    name_words: tuple[str, ...] = ()  # stems matched against file and directory names


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
    named = tuple(split_identifier(stripped)) if identifier else words
    name_words = tuple(dict.fromkeys(_stem(w) for w in named))
    return Intent(stripped, symbol, qualified, identifier, embedded, words, asks, name_words)


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
    # What the query makes of the chunk whatever its retrieval scores (`describe`): set
    # while the query's embedding is still running, for the candidates found by then.
    prior: float = 1.0  # step 2 (1.0 with role priors off)
    define: float = 0.0  # step 3
    names: float = 0.0  # step 4
    described_for: tuple[Intent, Features] | None = field(default=None, repr=False)


def describe(candidate: Candidate, intent: Intent, features: Features) -> None:
    """Steps 2-4 for one candidate: they depend on the chunk and the query only."""
    candidate.described_for = (intent, features)
    prior = role_prior(candidate.role, intent)
    candidate.prior = prior if features.role_priors else 1.0
    candidate.define = (
        definition_match(candidate, intent)
        if features.definitions and candidate.role not in ("test", "example", "docs")
        else 0.0
    )
    candidate.names = (
        name_boost(candidate.path, intent) * prior**0.5
        if features.names and candidate.role not in ("docs", "text")
        else 0.0
    )


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
            best = max(best, CASE_MATCH)
        elif last.lower() == lowered:
            best = max(best, CASE_MATCH * MEMBER_MATCH)
    return best


def definition_match(candidate: Candidate, intent: Intent) -> float:
    """Step 3: how well a chunk defines the identifier the query names (0 when it does
    not; 1 for the definition; up to 1.5 in a file named after it)."""
    names = [intent.symbol] if intent.symbol else list(intent.embedded)
    if not names or not candidate.symbols:
        return 0.0
    scale = 1.0 if intent.symbol else EMBEDDED_SCALE
    stem = _file_stem(candidate.path)
    best = 0.0
    for name in names:
        hit = symbol_match(candidate.symbols, name, intent.qualified)
        # The file named after the definition is where a reader expects it.
        if hit and (_squash(name) == stem or _stem(_squash(name)) == _stem(stem)):
            hit *= FILE_NAMED_AFTER
        best = max(best, hit)
    return scale * best


def name_boost(path: str, intent: Intent) -> float:
    """Step 4: share of query words found in the file's name or its directory's name."""
    words = intent.name_words
    if not words:
        return 0.0
    return NAME_BOOST * _names_matched(path, words) / len(words)


@functools.lru_cache(maxsize=65536)
def _names_matched(path: str, words: tuple[str, ...]) -> int:
    stems = _name_stems(path)
    return sum(1 for w in words if w in stems or any(_same_word(w, p) for p in stems))


@functools.lru_cache(maxsize=65536)
def _name_stems(path: str) -> frozenset[str]:
    """Stems of the identifier parts of a file's name and of its directory's name."""
    segments = path.rsplit("/", 2)
    parts = split_identifier(segments[-1].split(".", 1)[0])
    if len(segments) > 1:
        parts += split_identifier(segments[-2])
    return frozenset(_stem(p) for p in parts)


@functools.lru_cache(maxsize=65536)
def _file_stem(path: str) -> str:
    """The file's name without extension, squashed: `bash_completions.go` -> `bashcompletions`."""
    return _squash(path.rsplit("/", 1)[-1].split(".", 1)[0])


def rank(
    candidates: Sequence[Candidate],
    intent: Intent,
    *,
    mode: str,
    limit: int,
    features: Features = Features(),
) -> list[Candidate]:
    """Score and pick at most `limit` candidates; their `score` is relative to the best."""
    for c in candidates:
        described = c.described_for
        if described is None or described[0] is not intent or described[1] != features:
            describe(c, intent, features)
    bases = [relevance(c, intent, mode=mode) * c.prior for c in candidates]
    top = max(bases, default=0.0) or 1.0
    # A re-export counts as the definition only when the definition itself is not here.
    defined_here = any(c.define >= 1.0 and c.role == "definition" for c in candidates)
    for c, base in zip(candidates, bases, strict=True):
        define = 0.0 if c.role == "exports" and defined_here else c.define
        # Names multiply how well retrieval found a chunk; a definition of the queried
        # identifier is lifted above anything that merely mentions it.
        c.score = base * (1.0 + c.names) + top * DEFINITION_BOOST * define
    ordered = sorted(candidates, key=lambda c: (-c.score, c.id))
    picked = _diverse(ordered, limit) if features.diversity else ordered[:limit]
    if picked and picked[0].score > 0:
        best = picked[0].score
        for c in picked:
            c.score = max(0.0, min(1.0, c.score / best))
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


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """A light English stemmer for matching names: `streaming`, `streams` -> `stream`;
    `recovery`, `recoverer` -> `recover`; `formatting`, `formatter` -> `formatt`."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word
