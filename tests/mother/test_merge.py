"""Merging nodes' answers, reading their status, and counting hops."""

from __future__ import annotations

from service.knowledge.scry_models import ScryResult
from service.mother.federation import classify, merge
from service.mother.hops import MAX_HOPS, may_federate, parse_hops


def _hit(path: str, score: float, *, repo: str = "r", content: str | None = None) -> ScryResult:
    return ScryResult(
        id=abs(hash(path)) % 1000,
        content=content or f"text of {path}",
        score=score,
        event_type="doc.section",
        source_id=path,
        timestamp="",
        repo=repo,
        path=path,
        start_line=1,
        end_line=2,
        kind="markdown",
        modes=["lexical"],
    )


def test_merge_interleaves_by_rank_and_labels_each_result() -> None:
    local = [_hit("a1", 0.9), _hit("a2", 0.8)]
    remote = [_hit("b1", 0.95), _hit("b2", 0.1)]
    merged = merge([("local", local), ("b", remote)], limit=10)
    assert [(h.node, h.path) for h in merged] == [
        ("b", "b1"),  # rank 1 on both nodes: the node's own score breaks the tie
        ("local", "a1"),
        ("local", "a2"),
        ("b", "b2"),
    ]


def test_merge_keeps_a_shared_chunk_once_at_its_best_rank() -> None:
    shared = _hit("shared.md", 0.3, repo="common")
    local = [_hit("a1", 0.9), shared]
    remote = [shared.model_copy(update={"score": 0.99, "id": 77}), _hit("b2", 0.5)]
    merged = merge([("local", local), ("b", remote)], limit=10)
    paths = [(h.node, h.path) for h in merged]
    assert paths.count(("b", "shared.md")) == 1
    assert ("local", "shared.md") not in paths
    # At its best rank (first on b) it ties with a1 and does not outrank it by being twice.
    assert paths[:2] == [("b", "shared.md"), ("local", "a1")]


def test_merge_is_deterministic_and_respects_the_limit() -> None:
    lists = [("local", [_hit("x", 1.0)]), ("b", [_hit("y", 1.0)]), ("c", [_hit("z", 1.0)])]
    first = merge(lists, limit=2)
    assert first == merge(lists, limit=2)
    assert [h.node for h in first] == ["local", "b"]
    assert merge(lists, limit=0) == []


def test_classify_maps_answers_to_outcomes() -> None:
    ok, results, reason = classify(200, {"results": [_hit("p", 0.5).model_dump()], "count": 1})
    assert (ok, len(results), reason) == ("ok", 1, None)
    # An original Patina daemon sends only Patina's fields: still a result.
    patina = {
        "id": 3,
        "content": "c",
        "score": 0.2,
        "event_type": "e",
        "source_id": "s",
        "timestamp": "t",
    }
    outcome, [result], _ = classify(200, {"results": [patina]})
    assert outcome == "ok"
    assert (result.content, result.path, result.modes) == ("c", "", [])
    assert classify(401, {"error": "missing or invalid bearer token"}) == (
        "unauthorized",
        [],
        "HTTP 401: missing or invalid bearer token",
    )
    assert classify(403, None)[0] == "unauthorized"
    assert classify(504, {"error": "query exceeded its deadline"})[0] == "timeout"
    assert classify(503, {"error": "busy"}) == ("error", [], "HTTP 503: busy")
    assert classify(200, {"nothing": 1})[0] == "error"
    assert classify(200, {"results": [{"content": "no id or score"}]})[0] == "error"
    assert classify(200, None)[0] == "error"


def test_hop_header_parsing_never_buys_extra_hops() -> None:
    assert parse_hops(None) == 0
    assert parse_hops("1") == 1
    assert parse_hops("-5") == 0
    assert parse_hops("lots") == MAX_HOPS
    assert may_federate(parse_hops(None))
    assert not may_federate(parse_hops("1"))
    assert not may_federate(parse_hops("junk"))
