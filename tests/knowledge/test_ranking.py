"""The ranking stage's rules, on candidates made by hand (no index, no model)."""

from __future__ import annotations

import pytest

from service.knowledge.ranking import Candidate, Features, analyse, rank


def cand(
    chunk_id: int,
    path: str,
    *,
    role: str = "code",
    symbols: tuple[str, ...] = (),
    lexical: float = 0.5,
    semantic: float = 0.5,
) -> Candidate:
    return Candidate(chunk_id, path, role, symbols, lexical=lexical, semantic=semantic)


def order(candidates: list[Candidate], query: str, **kwargs: object) -> list[int]:
    picked = rank(candidates, analyse(query), mode="hybrid", limit=10, **kwargs)  # type: ignore[arg-type]
    return [c.id for c in picked]


def test_identifier_queries_are_recognised_with_their_qualified_names() -> None:
    assert analyse("StaticModel").symbol == "StaticModel"
    assert analyse("bash_completions").identifier
    ruby = analyse("Sinatra::Base")
    assert (ruby.symbol, ruby.qualified) == ("Base", "Sinatra.Base")
    assert analyse("Router.Handle").qualified == "Router.Handle"
    sentence = analyse("how the StaticModel encodes text with safeParse")
    assert not sentence.identifier
    assert sentence.symbol is None
    assert sentence.embedded == ("StaticModel", "safeParse")


def test_tests_docs_and_config_step_back_unless_the_query_asks_for_them() -> None:
    candidates = [
        cand(1, "tests/test_router.py", role="test", lexical=1.0, semantic=1.0),
        cand(2, "docs/router.md", role="docs", lexical=1.0, semantic=1.0),
        cand(3, "config/router.yaml", role="config", lexical=1.0, semantic=1.0),
        cand(4, "src/dispatch.py", role="code", lexical=0.6, semantic=0.6),
    ]
    assert order(candidates, "route dispatching")[0] == 4
    assert order(candidates, "route dispatching tests")[0] == 1
    assert order(candidates, "route dispatching readme")[0] == 2
    assert order(candidates, "route dispatching config")[0] == 3


def test_the_definition_of_a_queried_identifier_outranks_its_mentions() -> None:
    candidates = [
        cand(1, "src/app.py", lexical=1.0, semantic=0.9),  # uses Router a lot
        cand(2, "src/web.py", role="definition", symbols=("Router",), lexical=0.3),
        cand(3, "src/other.py", role="definition", symbols=("Other.Router",), lexical=0.9),
        cand(4, "src/lower.py", role="definition", symbols=("router",), lexical=0.9),
    ]
    assert order(candidates, "Router")[:3] == [2, 3, 4]


def test_a_definition_in_a_file_named_after_it_comes_first() -> None:
    candidates = [
        cand(1, "src/util.go", role="definition", symbols=("Engine",), lexical=0.9),
        cand(2, "src/engine.go", role="definition", symbols=("Engine",), lexical=0.5),
    ]
    assert order(candidates, "Engine")[0] == 2


def test_a_reexport_stands_in_for_a_definition_only_when_none_is_found() -> None:
    reexport = cand(1, "src/mod.rs", role="exports", symbols=("IntoResponse",), lexical=0.4)
    mention = cand(2, "src/handler.rs", lexical=1.0)
    assert order([reexport, mention], "IntoResponse")[0] == 1
    definition = cand(3, "core/response.rs", role="definition", symbols=("IntoResponse",))
    assert order([reexport, mention, definition], "IntoResponse")[0] == 3
    assert order([reexport, mention, definition], "IntoResponse")[-1] == 1


def test_file_and_directory_names_matching_query_words_lift_a_chunk() -> None:
    candidates = [
        cand(1, "completions.go", lexical=0.6, semantic=0.6),
        cand(2, "bash_completions.go", lexical=0.5, semantic=0.5),
        cand(3, "middleware/recoverer.go", lexical=0.4, semantic=0.4),
    ]
    assert order(candidates, "bash completion generation")[0] == 2
    assert order(candidates, "panic recovery middleware")[0] == 3


def test_one_file_does_not_fill_the_list() -> None:
    same = [cand(i, "src/big.py", lexical=1.0 - i / 100, semantic=1.0) for i in range(1, 6)]
    other = cand(9, "src/small.py", lexical=0.6, semantic=0.6)
    assert order([*same, other], "parse tokens")[:2] == [1, 9]
    # Without diversity the file's chunks come first, in order.
    no_diversity = Features(diversity=False)
    assert order([*same, other], "parse tokens", features=no_diversity)[:5] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("mode", ["hybrid", "lexical", "semantic"])
def test_scores_are_relative_to_the_best_and_never_increase(mode: str) -> None:
    candidates = [
        cand(i, f"src/f{i % 4}.py", lexical=(i * 37 % 11) / 10, semantic=(i * 13 % 7) / 6)
        for i in range(1, 30)
    ]
    picked = rank(candidates, analyse("parse the header"), mode=mode, limit=10)
    scores = [c.score for c in picked]
    assert scores[0] == 1.0
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_each_mode_ranks_by_its_own_retrieval_score() -> None:
    lexical_best = cand(1, "a.py", lexical=1.0, semantic=0.0)
    semantic_best = cand(2, "b.py", lexical=0.0, semantic=1.0)
    intent = analyse("parse the header")
    assert rank([lexical_best, semantic_best], intent, mode="lexical", limit=2)[0].id == 1
    assert rank([lexical_best, semantic_best], intent, mode="semantic", limit=2)[0].id == 2


def test_every_feature_can_be_switched_off() -> None:
    candidates = [
        cand(1, "tests/test_router.py", role="test", lexical=1.0, semantic=1.0),
        cand(2, "src/web.py", role="definition", symbols=("Router",), lexical=0.5),
    ]
    assert order(candidates, "Router")[0] == 2
    off = Features(role_priors=False, definitions=False, names=False, diversity=False)
    assert order(candidates, "Router", features=off)[0] == 1
