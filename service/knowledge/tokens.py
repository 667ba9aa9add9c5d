"""Code-aware words for lexical search: identifiers split, and kept whole.

`parseHTTPRequest`, `parse_http_request` and `parse-http-request` all give the whole
identifier `parsehttprequest` (so any spelling of it finds the others) followed by its parts
`parse`, `http`, `request` (so the words `http request` find it too). Plain words pass
through lowercased. Stemming is left to the index (FTS5 `porter`), so `completions` and
`completion` meet there.

The same function tokenizes chunks when they are indexed and queries when they are asked,
so both sides always agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A word: letters, digits and underscores, joined across a dash only when a letter follows
# (`max-age`, `bash-completion`), so arithmetic such as `i-1` stays two words.
_WORD = re.compile(r"\w+(?:-(?=[^\W\d_])\w+)*")
# camelCase / PascalCase / acronyms / digits: `getHTTPResponse2` -> get, HTTP, Response, 2.
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SEPARATORS = re.compile(r"[_\-]+")
# Longer "words" are hashes, base64 or minified code: they only bloat the index.
MAX_TOKEN_CHARS = 48

# Words that carry no meaning in a question about code. Dropped from queries only (never
# from the index), and only when the query has other words.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "there",
        "these",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "work",
        "works",
    ]
)


def split_identifier(word: str) -> list[str]:
    """The lowercased parts of one identifier (snake_case, kebab-case, camelCase, digits).

    Single letters are dropped (`getX` -> `get`); a word that does not split gives itself."""
    parts: list[str] = []
    for segment in _SEPARATORS.split(word):
        if not segment:
            continue
        pieces = _CAMEL.findall(segment) if segment.isascii() else [segment]
        # Non-ASCII letters (or anything the camel pattern skips) keep the segment whole.
        if not pieces or sum(len(p) for p in pieces) != len(segment):
            pieces = [segment]
        parts.extend(p.lower() for p in pieces)
    kept = [p for p in parts if len(p) > 1]
    return kept or [p for p in parts if p]


def word_tokens(word: str) -> list[str]:
    """The tokens of one word: the whole identifier (separators removed), then its parts
    when it has more than one."""
    parts = split_identifier(word)
    if not parts:
        return []
    whole = "".join(_SEPARATORS.split(word)).lower()
    if len(whole) > MAX_TOKEN_CHARS:
        return [p for p in parts if len(p) <= MAX_TOKEN_CHARS]
    if len(parts) == 1 and parts[0] == whole:
        return [whole]
    return [whole, *parts]


def words(text: str) -> list[str]:
    """The raw words of a text, in order."""
    return _WORD.findall(text)


def tokenize(text: str) -> list[str]:
    """Every token of a text, in order (duplicates kept: term frequency counts)."""
    out: list[str] = []
    for word in _WORD.findall(text):
        out.extend(word_tokens(word))
    return out


def tokens_text(text: str) -> str:
    """`tokenize` joined by spaces: what the full-text index is fed."""
    return " ".join(tokenize(text))


def tokens_of_all(texts: Iterable[str]) -> str:
    """The tokens of several short texts (symbol names, path segments) as one string."""
    return " ".join(t for text in texts for t in tokenize(text))


def query_tokens(text: str) -> list[str]:
    """A query's distinct tokens in order, stopwords dropped unless nothing else is left."""
    tokens = list(dict.fromkeys(tokenize(text)))
    meaningful = [t for t in tokens if t not in STOPWORDS]
    return meaningful or tokens
