"""Federated scry across real nodes over mutual TLS: merge, partial answers, refusals,
deadlines and loops."""

from __future__ import annotations

from tests.mother.cluster import Cluster

ROLLBACK = "how do I roll back a broken release"


def _by_node(answer: dict) -> dict[str, dict]:
    return {status["node"]: status for status in answer["nodes"]}


def test_results_from_every_node_merge_and_are_labelled(cluster: Cluster) -> None:
    answer = cluster["a"].scry({"query": ROLLBACK, "limit": 6, "federate": ["b", "c"]})
    nodes = _by_node(answer)
    assert [s["status"] for s in answer["nodes"]] == ["ok", "ok", "ok"]
    assert list(nodes) == ["local", "b", "c"]
    print(answer)
