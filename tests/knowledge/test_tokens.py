"""Identifier splitting: every spelling of an identifier meets the others and its words."""

from __future__ import annotations

import pytest

from service.knowledge.tokens import query_tokens, split_identifier, tokenize, word_tokens


@pytest.mark.parametrize(
    ("word", "tokens"),
    [
        ("parseHTTPRequest", ["parsehttprequest", "parse", "http", "request"]),
        ("parse_http_request", ["parsehttprequest", "parse", "http", "request"]),
        ("parse-http-request", ["parsehttprequest", "parse", "http", "request"]),
        ("ParseHttpRequest", ["parsehttprequest", "parse", "http", "request"]),
        ("ZodType", ["zodtype", "zod", "type"]),
        ("bash_completions", ["bashcompletions", "bash", "completions"]),
        ("XMLHttpRequest", ["xmlhttprequest", "xml", "http", "request"]),
        ("int64", ["int64", "int", "64"]),
        ("__init__", ["init"]),
        ("router", ["router"]),
        ("Router", ["router"]),
    ],
)
def test_an_identifier_is_kept_whole_and_split_into_its_words(word: str, tokens: list[str]) -> None:
    assert word_tokens(word) == tokens


def test_single_letters_are_not_parts_but_a_single_letter_word_stays() -> None:
    assert split_identifier("getX") == ["get"]
    assert word_tokens("x") == ["x"]


def test_non_ascii_identifiers_split_at_underscores_only() -> None:
    assert word_tokens("café_au_lait") == ["caféaulait", "café", "au", "lait"]


def test_dashes_join_words_but_not_arithmetic() -> None:
    assert tokenize("max-age i-1") == ["maxage", "max", "age", "i", "1"]


def test_very_long_words_keep_only_their_parts() -> None:
    blob = "a" * 30 + "B" * 30
    assert all(len(t) <= 48 for t in tokenize(blob))


def test_code_is_tokenized_in_order_with_repeats() -> None:
    assert tokenize("func (mx *Mux) Use(h http.Handler) http.Handler") == [
        "func", "mx", "mux", "use", "h", "http", "handler", "http", "handler",
    ]  # fmt: skip


def test_query_stopwords_are_dropped_unless_nothing_else_is_left() -> None:
    assert query_tokens("how does the router handle middleware") == [
        "router", "handle", "middleware",
    ]  # fmt: skip
    assert query_tokens("how is it") == ["how", "is", "it"]
    assert query_tokens("ZodType ZodType") == ["zodtype", "zod", "type"]
