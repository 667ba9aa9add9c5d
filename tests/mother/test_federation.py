"""Federated scry across real nodes over mutual TLS: merge, partial answers, refusals,
deadlines, loops, metrics and the CLI."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx

from service.client import ssl_context
from tests.mother.cluster import (
    HELD_BY_A,
    HELD_BY_B,
    KILLED_TIMEOUT_MS,
    PLANTED_QUERY,
    SILENT_TIMEOUT_MS,
    TOKENS,
    WRONG_TOKEN,
    Cluster,
)
from tests.support.metrics import metric_total
from tests.support.process import run_patina, uds_client

ROLLBACK = "how do I roll back a broken release"
# Generous bounds that still tell "bounded by the deadline" from "waited for the node".
SLACK_SECS = 4.0


def _statuses(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {status["node"]: status for status in answer["nodes"]}


def _repos_by_node(answer: dict[str, Any]) -> set[tuple[str, str]]:
    return {(hit["node"], hit["repo"]) for hit in answer["results"]}


def _mother_requests(metrics: str) -> float:
    return metric_total(metrics, "mother_requests_total{")


def test_results_from_every_node_merge_and_are_labelled(cluster: Cluster) -> None:
    answer = cluster["a"].scry({"query": ROLLBACK, "limit": 6, "federate": ["b", "c"]})
    statuses = _statuses(answer)
    assert list(statuses) == ["local", "b", "c"]
    assert {s["status"] for s in statuses.values()} == {"ok"}
    assert all(s["count"] > 0 and s["latency_ms"] > 0 for s in statuses.values())
    assert answer["count"] == len(answer["results"]) == 6
    # Each node's best answer is its own rollback document; fusion by rank puts the three
    # first-ranked results ahead of every second-ranked one.
    top = answer["results"][:3]
    assert {hit["node"] for hit in top} == {"local", "b", "c"}
    assert all(hit["path"] == "docs/rollback.md" for hit in top)
    assert {(hit["node"], hit["repo"]) for hit in top} == {("local", "a"), ("b", "b"), ("c", "c")}


def _embeds(metrics: str) -> float:
    return metric_total(metrics, "embed_duration_seconds_count")


def test_a_hybrid_federated_scry_embeds_its_query_once_for_every_node(cluster: Cluster) -> None:
    before = {name: _embeds(cluster[name].metrics()) for name in ("a", "b", "c")}
    answer = cluster["a"].scry({"query": ROLLBACK, "mode": "hybrid", "federate": ["b", "c"]})
    after = {name: _embeds(cluster[name].metrics()) for name in ("a", "b", "c")}
    assert {s["status"] for s in answer["nodes"]} == {"ok"}
    # a embedded the text; b and c ranked by the vector a sent and ran no model.
    assert after["a"] - before["a"] == 1
    assert after["b"] == before["b"]
    assert after["c"] == before["c"]
    assert {hit["node"] for hit in answer["results"][:3]} == {"local", "b", "c"}


def test_a_chunk_held_by_two_nodes_is_returned_once(cluster: Cluster) -> None:
    answer = cluster["a"].scry(
        {"query": "flux capacitor calibration constant", "limit": 10, "federate": ["b"]}
    )
    glossary = [hit for hit in answer["results"] if hit["repo"] == "shared"]
    assert len(glossary) == 1
    assert glossary[0]["node"] == "local"
    assert answer["results"][0] == glossary[0]
    assert _statuses(answer)["b"]["count"] >= 1


def test_a_killed_node_gives_partial_results_within_its_deadline(cluster: Cluster) -> None:
    body = {"query": ROLLBACK, "limit": 10, "federate": ["b", "d"]}
    before = cluster["a"].scry(body)
    assert _statuses(before)["d"]["status"] == "ok"
    assert ("d", "d") in _repos_by_node(before)

    cluster["d"].process.kill()
    started = time.monotonic()
    after = cluster["a"].scry(body)
    elapsed = time.monotonic() - started

    statuses = _statuses(after)
    assert statuses["d"]["status"] == "error"
    assert "cannot connect" in statuses["d"]["error"]
    assert statuses["d"]["latency_ms"] < KILLED_TIMEOUT_MS
    assert statuses["local"]["status"] == statuses["b"]["status"] == "ok"
    assert {node for node, _repo in _repos_by_node(after)} == {"local", "b"}
    assert elapsed < KILLED_TIMEOUT_MS / 1000 + SLACK_SECS


def test_a_wrong_token_marks_the_node_unauthorized_and_the_others_answer(
    cluster: Cluster,
) -> None:
    answer = cluster["a"].scry({"query": ROLLBACK, "federate": ["b-wrong", "c"]})
    statuses = _statuses(answer)
    assert statuses["b-wrong"]["status"] == "unauthorized"
    assert statuses["b-wrong"]["error"] == "HTTP 401: missing or invalid bearer token"
    assert statuses["c"]["status"] == statuses["local"]["status"] == "ok"
    assert {node for node, _repo in _repos_by_node(answer)} == {"local", "c"}


def test_a_silent_node_costs_no_more_than_its_deadline(cluster: Cluster) -> None:
    started = time.monotonic()
    answer = cluster["a"].scry({"query": ROLLBACK, "federate": ["silent", "b"]})
    elapsed = time.monotonic() - started

    statuses = _statuses(answer)
    assert statuses["silent"]["status"] == "timeout"
    assert statuses["silent"]["error"] == f"no answer within {SILENT_TIMEOUT_MS} ms"
    assert SILENT_TIMEOUT_MS <= statuses["silent"]["latency_ms"] < SILENT_TIMEOUT_MS + 1000
    assert statuses["b"]["status"] == "ok"
    assert ("b", "b") in _repos_by_node(answer)
    assert elapsed < SILENT_TIMEOUT_MS / 1000 + SLACK_SECS


def test_federation_from_a_to_b_and_back_to_a_terminates(cluster: Cluster) -> None:
    # b lists a as its mother: asked with federate=true, b asks a at hop 1, and a answers
    # from its own index instead of asking b again.
    a_calls_before = _mother_requests(cluster["a"].metrics())
    answer = cluster["b"].scry({"query": ROLLBACK, "federate": True})
    assert [(s["node"], s["status"]) for s in answer["nodes"]] == [("local", "ok"), ("a", "ok")]
    assert ("a", "a") in _repos_by_node(answer)
    assert _mother_requests(cluster["a"].metrics()) == a_calls_before
    # And the other way round: a asks every mother (b among them) and b does not call back.
    b_calls_before = _mother_requests(cluster["b"].metrics())
    answer = cluster["a"].scry({"query": ROLLBACK, "federate": True})
    assert _statuses(answer)["b"]["status"] == "ok"
    assert _mother_requests(cluster["b"].metrics()) == b_calls_before


def test_a_request_at_the_hop_limit_is_answered_from_the_local_index(cluster: Cluster) -> None:
    answer = cluster["a"].scry(
        {"query": ROLLBACK, "federate": True}, headers={"X-Patina-Hops": "1"}
    )
    assert "nodes" not in answer
    assert {hit["repo"] for hit in answer["results"]} <= {"a", "shared"}
    assert all("node" not in hit for hit in answer["results"])


def test_a_plain_scry_is_unchanged_by_federation(cluster: Cluster) -> None:
    answer = cluster["a"].scry({"query": ROLLBACK, "limit": 3})
    # No `nodes`; the node's own index readiness is part of every answer.
    assert set(answer) == {"results", "count", "mode", "modes_available", "semantic_coverage"}
    assert all("node" not in hit for hit in answer["results"])


def test_a_local_mother_is_reached_over_its_unix_socket(cluster: Cluster) -> None:
    answer = cluster["a"].scry({"query": ROLLBACK, "federate": ["c-local"]})
    assert _statuses(answer)["c-local"]["status"] == "ok"
    assert ("c-local", "c") in _repos_by_node(answer)


def test_an_unknown_node_name_is_refused(cluster: Cluster) -> None:
    with cluster["a"].client() as client:
        response = client.post("/api/scry", json={"query": "x", "federate": ["b", "nope"]})
    assert response.status_code == 400
    assert response.json() == {"error": "unknown mother node: nope"}


def test_metrics_count_requests_per_node_and_outcome(cluster: Cluster) -> None:
    cluster["a"].scry({"query": ROLLBACK, "federate": ["b", "b-wrong"]})
    metrics = cluster["a"].metrics()
    assert re.search(r'^mother_requests_total\{node="b",outcome="ok"\} [1-9]', metrics, re.M)
    assert re.search(
        r'^mother_requests_total\{node="b-wrong",outcome="unauthorized"\} [1-9]', metrics, re.M
    )
    assert re.search(r'^mother_request_duration_seconds_count\{node="b"\} [1-9]', metrics, re.M)


def test_cli_asks_a_configured_mother_directly(cluster: Cluster) -> None:
    env = {"PATINA_HOME": str(cluster["a"].home)}
    config = str(cluster["a"].config)
    done = run_patina("scry", ROLLBACK, "--mother", "c", "--json", "--config", config, env=env)
    assert done.returncode == 0, done.stderr.decode()
    answer = json.loads(done.stdout)
    assert answer["results"][0]["repo"] == "c"

    federated = run_patina(
        "scry", ROLLBACK, "--federate", "--json", "-n", "4", "--config", config, env=env
    )
    assert federated.returncode == 0, federated.stderr.decode()
    nodes = {s["node"]: s["status"] for s in json.loads(federated.stdout)["nodes"]}
    assert nodes["local"] == nodes["b"] == nodes["c"] == "ok"

    missing = run_patina("scry", ROLLBACK, "--mother", "zz", "--config", config, env=env)
    assert missing.returncode == 2
    assert "no mother node named 'zz'" in missing.stderr.decode()


def test_tokens_never_reach_answers_logs_metrics_or_files(cluster: Cluster) -> None:
    tripwires = [*TOKENS.values(), WRONG_TOKEN]
    answer = cluster["a"].scry({"query": ROLLBACK, "federate": ["b", "b-wrong", "c"]})
    seen = [json.dumps(answer), cluster["a"].metrics()]
    seen += [node.process.log() for node in cluster.nodes.values()]
    for text in seen:
        assert not any(token in text for token in tripwires)
    for path in cluster.base.rglob("*"):
        if path.is_file() and cluster.secrets not in path.parents:
            data = path.read_bytes()
            assert not any(token.encode() in data for token in tripwires), path


def _tls_client(cluster: Cluster, name: str, token: str) -> httpx.Client:
    """node `name` over TLS, as a node that federates to it would reach it."""
    ctx = ssl_context(cluster.certs.ca, cluster.certs.client, cluster.certs.client_key)
    return httpx.Client(
        base_url=f"https://127.0.0.1:{cluster[name].port}",
        verify=ctx,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def _push(cluster: Cluster, name: str, values: dict[str, str] | None) -> None:
    with uds_client(cluster[name].process.admin_socket) as admin:
        if values is None:
            assert admin.delete("/admin/secrets").status_code == 200
        else:
            assert admin.put("/admin/secrets", json={"secrets": values}).status_code == 200


def test_no_scry_answer_carries_a_value_a_broker_holds(cluster: Cluster) -> None:
    def forms(*values: str) -> list[str]:
        return [*values, *(base64.b64encode(value.encode()).decode() for value in values)]

    _push(cluster, "a", {"STAGING_KEY_A": HELD_BY_A})
    _push(cluster, "b", {"STAGING_KEY_B": HELD_BY_B})
    try:
        answers: dict[str, str] = {}
        for mode in ("hybrid", "lexical", "semantic"):
            body = {"query": PLANTED_QUERY, "mode": mode, "limit": 50}
            federated = {**body, "federate": ["b"]}
            # a's socket owner may read a's secret: it sees a's reference, never b's name.
            answers[f"uds {mode}"] = json.dumps(cluster["a"].scry(body))
            answers[f"uds federated {mode}"] = json.dumps(cluster["a"].scry(federated))
            with _tls_client(cluster, "a", TOKENS["a"]) as tls:
                answers[f"tls {mode}"] = tls.post("/api/scry", json=body).text
                answers[f"tls federated {mode}"] = tls.post("/api/scry", json=federated).text
            # Exactly what a sends b when it federates: b's token, hop 1.
            with _tls_client(cluster, "b", TOKENS["b"]) as to_mother:
                answers[f"b to a mother {mode}"] = to_mother.post(
                    "/api/scry", json=body, headers={"X-Patina-Hops": "1"}
                ).text
        config = str(cluster["a"].config)
        cli = run_patina(
            "scry",
            PLANTED_QUERY,
            "--federate",
            "--json",
            "-n",
            "50",
            "--config",
            config,
            env={"PATINA_HOME": str(cluster["a"].home)},
        )
        assert cli.returncode == 0, cli.stderr.decode()
        answers["cli federated"] = cli.stdout.decode()
    finally:
        _push(cluster, "a", None)
        _push(cluster, "b", None)
    for where, text in answers.items():
        # b does not hold a's value: its own answer shows it, and a scrubs it on arrival.
        held = forms(HELD_BY_B) if where.startswith("b to") else forms(HELD_BY_A, HELD_BY_B)
        assert not any(form in text for form in held), where
        assert "STAGING_KEY_B" not in text, where
        # The planted chunks were found, with their values replaced.
        assert "pasted by mistake" in text.lower(), where
    for where in ("uds lexical", "uds federated lexical", "cli federated"):
        assert "${secret:STAGING_KEY_A}" in answers[where], where
    for where in ("tls lexical", "tls federated lexical", "b to a mother lexical"):
        assert "[REDACTED]" in answers[where], where
        assert "STAGING_KEY_A" not in answers[where], where
    assert HELD_BY_A in answers["b to a mother lexical"]
    # b's value left b as [REDACTED] (b answered a's token), and a kept it so.
    assert (
        "Pasted by mistake: ${secret:STAGING_KEY_A} and [REDACTED]"
        in answers["uds federated lexical"]
    )
    # With the brokers cleared, the indexed text is shown as it is.
    plain = json.dumps(cluster["a"].scry({"query": PLANTED_QUERY, "mode": "lexical"}))
    assert HELD_BY_A in plain
