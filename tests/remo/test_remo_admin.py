"""remo's admin socket, spoken raw: push-creds, clear-creds, status and their errors."""

from __future__ import annotations

from typing import Any

from tests.remo.conftest import ALPHA_VALUE, BETA_VALUE, RemoService, conforms
from tests.remo.remo_client import RemoClient, ask
from tests.support.process import uds_client

SET = {"GITHUB_TOKEN": ALPHA_VALUE, "NPM_TOKEN": BETA_VALUE}


def test_push_creds_answers_loaded_at_and_count(
    remo: RemoService, wire_schema: dict[str, Any]
) -> None:
    answer = ask(remo.admin, {"op": "push-creds", "secrets": SET})
    assert conforms(wire_schema, "push_creds_answer", answer) == []
    assert (answer["ok"], answer["secret_count"]) == (True, 2)


def test_status_reports_protocol_2_the_count_and_the_projects(
    remo: RemoService, wire_schema: dict[str, Any]
) -> None:
    pushed = ask(remo.admin, {"op": "push-creds", "secrets": SET})
    status = ask(remo.admin, {"op": "status"})
    assert conforms(wire_schema, "status_answer", status) == []
    assert (status["protocol_version"], status["secret_count"]) == (2, 2)
    assert status["secrets_loaded_at"] == pushed["loaded_at"]
    assert [p["name"] for p in status["projects"]] == ["alpha", "beta", "gamma", "delta"]


def test_push_creds_feeds_the_store_the_http_routes_serve(remo: RemoService) -> None:
    ask(remo.admin, {"op": "push-creds", "secrets": SET})
    with uds_client(remo.service.socket) as client:
        read = client.get("/secrets/NPM_TOKEN")
    assert read.json()["value"] == BETA_VALUE


def test_the_admin_socket_still_speaks_http(remo: RemoService) -> None:
    ask(remo.admin, {"op": "push-creds", "secrets": SET})
    with uds_client(remo.admin) as client:
        status = client.get("/admin/status")
    assert status.json()["count"] == 2


def test_clear_creds_empties_the_set(remo: RemoService, wire_schema: dict[str, Any]) -> None:
    ask(remo.admin, {"op": "push-creds", "secrets": SET})
    cleared = ask(remo.admin, {"op": "clear-creds"})
    assert conforms(wire_schema, "clear_creds_answer", cleared) == []
    assert ask(remo.admin, {"op": "status"})["secret_count"] == 0


def test_after_clear_creds_a_project_get_is_not_found(remo: RemoService) -> None:
    ask(remo.admin, {"op": "clear-creds"})
    answer = ask(remo.project("alpha"), {"op": "get", "name": "GITHUB_TOKEN"})
    assert answer["error"] == "not_found"


def test_a_push_with_an_invalid_name_is_refused_and_keeps_the_set(
    remo: RemoService, wire_schema: dict[str, Any]
) -> None:
    ask(remo.admin, {"op": "push-creds", "secrets": SET})
    refused = ask(remo.admin, {"op": "push-creds", "secrets": {"bad name": ALPHA_VALUE}})
    assert conforms(wire_schema, "error_answer", refused) == []
    assert refused["error"] == "protocol_error"
    assert ask(remo.admin, {"op": "status"})["secret_count"] == 2


def test_a_push_with_a_non_string_value_is_refused(remo: RemoService) -> None:
    refused = ask(remo.admin, {"op": "push-creds", "secrets": {"GITHUB_TOKEN": 5}})
    assert refused["error"] == "protocol_error"


def test_push_audit_events_carry_counts_never_values(remo: RemoService) -> None:
    ask(remo.admin, {"op": "push-creds", "secrets": {**SET, "SHARED": "x" * 40}})
    events = remo.wait_audit(event="push", outcome="ok", count=3)
    assert events[-1]["transport"] == "admin"
    text = (remo.service.home / "data" / "audit.jsonl").read_text()
    assert ALPHA_VALUE not in text
    assert BETA_VALUE not in text


def test_an_oversized_admin_frame_is_answered_protocol_error_then_closed(
    remo: RemoService, wire_schema: dict[str, Any]
) -> None:
    with RemoClient(remo.admin) as client:
        client.send_raw(b'{"op":"push-creds","secrets":{"A":"' + b"x" * (1024 * 1024 + 1))
        answer = client.read()
        assert conforms(wire_schema, "error_answer", answer) == []
        assert answer["error"] == "protocol_error"
        assert "frame cap" in answer["message"]
        assert client.closed_by_server()


def test_malformed_frames_are_answered_and_the_connection_keeps_serving(
    remo: RemoService, wire_schema: dict[str, Any]
) -> None:
    bad = [
        b"{not json\n",
        b'{"op": 5}\n',
        b'{"op": "status", "op": "clear-creds"}\n',
        b'{"op": "\xff"}\n',
        b'{"op": "get", "name": "GITHUB_TOKEN"}\n',  # a project op, not the admin's
    ]
    with RemoClient(remo.admin) as client:
        for frame in bad:
            client.send_raw(frame)
            answer = client.read()
            assert conforms(wire_schema, "error_answer", answer) == []
            assert answer["error"] == "protocol_error", frame
        assert client.ask({"op": "status"})["ok"] is True


def test_no_error_message_quotes_the_request(remo: RemoService) -> None:
    refused = ask(remo.admin, {"op": "push-creds", "secrets": {ALPHA_VALUE: 1}})
    assert ALPHA_VALUE not in refused["message"]
