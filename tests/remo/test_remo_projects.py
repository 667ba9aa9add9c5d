"""Per-project sockets, spoken raw: get / ping / info, remo's error codes, HTTP on the same
socket, and two projects under one uid that see only their own secrets."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest

from tests.remo.conftest import (
    ALPHA_VALUE,
    BETA_VALUE,
    SHARED_VALUE,
    RemoService,
    conforms,
)
from tests.remo.remo_client import RemoClient, ask
from tests.support.process import ServiceProcess, uds_client

SET = {"GITHUB_TOKEN": ALPHA_VALUE, "NPM_TOKEN": BETA_VALUE, "SHARED": SHARED_VALUE}


@pytest.fixture
def loaded(remo: RemoService) -> RemoService:
    assert ask(remo.admin, {"op": "push-creds", "secrets": SET})["ok"] is True
    return remo


def test_get_answers_the_value_and_a_ttl(loaded: RemoService, wire_schema: dict[str, Any]) -> None:
    answer = ask(loaded.project("alpha"), {"op": "get", "name": "GITHUB_TOKEN"})
    assert conforms(wire_schema, "get_answer", answer) == []
    assert (answer["value"], answer["ttl_seconds"]) == (ALPHA_VALUE, 900)


def test_get_outside_the_allowlist_is_denied(
    loaded: RemoService, wire_schema: dict[str, Any]
) -> None:
    answer = ask(loaded.project("alpha"), {"op": "get", "name": "NPM_TOKEN"})
    assert conforms(wire_schema, "error_answer", answer) == []
    assert answer["error"] == "denied"
    assert BETA_VALUE not in str(answer)


def test_an_unloaded_name_outside_the_allowlist_is_denied_not_not_found(
    loaded: RemoService,
) -> None:
    # Checked before existence: a project cannot probe which names are loaded.
    answer = ask(loaded.project("alpha"), {"op": "get", "name": "NOT_LOADED"})
    assert answer["error"] == "denied"


def test_an_allowed_name_not_loaded_is_not_found(remo: RemoService) -> None:
    ask(remo.admin, {"op": "push-creds", "secrets": {"SHARED": SHARED_VALUE}})
    answer = ask(remo.project("alpha"), {"op": "get", "name": "GITHUB_TOKEN"})
    assert answer["error"] == "not_found"


@pytest.mark.parametrize(
    "request_",
    [{"op": "get"}, {"op": "get", "name": 7}, {"op": "get", "name": "bad name"}, {"op": "nope"}],
)
def test_bad_requests_are_protocol_errors(
    loaded: RemoService, wire_schema: dict[str, Any], request_: dict[str, Any]
) -> None:
    answer = ask(loaded.project("alpha"), request_)
    assert conforms(wire_schema, "error_answer", answer) == []
    assert answer["error"] == "protocol_error"


def test_unknown_request_fields_are_ignored(loaded: RemoService) -> None:
    answer = ask(loaded.project("beta"), {"op": "get", "name": "NPM_TOKEN", "trace": "x"})
    assert answer["value"] == BETA_VALUE


def test_ping_names_the_project_and_protocol_2(
    remo: RemoService, wire_schema: dict[str, Any]
) -> None:
    answer = ask(remo.project("beta"), {"op": "ping"})
    assert conforms(wire_schema, "ping_answer", answer) == []
    assert (answer["project"], answer["protocol_version"]) == ("beta", 2)


def test_info_lists_the_projects_allowlist(remo: RemoService, wire_schema: dict[str, Any]) -> None:
    answer = ask(remo.project("alpha"), {"op": "info"})
    assert conforms(wire_schema, "info_answer", answer) == []
    assert answer["allowlist"] == ["GITHUB_TOKEN", "SHARED"]


def test_pipelined_requests_are_answered_in_order(loaded: RemoService) -> None:
    with RemoClient(loaded.project("alpha")) as client:
        client.send_raw(
            b'{"op":"ping"}\n{"op":"get","name":"SHARED"}\n\n{"op":"get","name":"NPM_TOKEN"}\n'
        )
        answers = [client.read(), client.read(), client.read()]
    got = [answers[0].get("project"), answers[1].get("value"), answers[2].get("error")]
    assert got == ["alpha", SHARED_VALUE, "denied"]


def test_two_projects_under_one_uid_get_only_their_own_secrets(loaded: RemoService) -> None:
    # Both sockets are reached by this test's uid: the socket alone tells them apart.
    got = {
        (project, name): ask(loaded.project(project), {"op": "get", "name": name})
        for project in ("alpha", "beta")
        for name in ("GITHUB_TOKEN", "NPM_TOKEN", "SHARED")
    }
    outcome = {key: answer.get("value", answer.get("error")) for key, answer in got.items()}
    assert outcome == {
        ("alpha", "GITHUB_TOKEN"): ALPHA_VALUE,
        ("alpha", "NPM_TOKEN"): "denied",
        ("alpha", "SHARED"): SHARED_VALUE,
        ("beta", "GITHUB_TOKEN"): "denied",
        ("beta", "NPM_TOKEN"): BETA_VALUE,
        ("beta", "SHARED"): SHARED_VALUE,
    }


def test_two_projects_over_http_list_and_read_only_their_own(loaded: RemoService) -> None:
    seen = {}
    for project, other in (("alpha", "NPM_TOKEN"), ("beta", "GITHUB_TOKEN")):
        with uds_client(loaded.project(project)) as client:
            seen[project] = (
                client.get("/secrets").json()["names"],
                client.get(f"/secrets/{other}").status_code,
            )
    assert seen == {
        "alpha": (["GITHUB_TOKEN", "SHARED"], 403),
        "beta": (["NPM_TOKEN", "SHARED"], 403),
    }


def test_http_on_a_project_socket_reads_as_the_project(loaded: RemoService) -> None:
    with uds_client(loaded.project("beta")) as client:
        read = client.get("/secrets/NPM_TOKEN")
    assert read.json()["value"] == BETA_VALUE
    event = loaded.wait_audit(event="read", principal="project:beta", via="api")[-1]
    assert event["transport"] == "project"


def test_http_on_a_project_socket_has_no_admin_routes(loaded: RemoService) -> None:
    with uds_client(loaded.project("alpha")) as client:
        assert client.get("/admin/status").status_code == 404


def test_a_project_is_not_governed_by_the_owner_rule(loaded: RemoService) -> None:
    # The public socket's owner reads everything; the same uid on a project socket does not.
    with uds_client(loaded.service.socket) as owner:
        assert owner.get("/secrets/NPM_TOKEN").status_code == 200
    assert ask(loaded.project("alpha"), {"op": "get", "name": "NPM_TOKEN"})["error"] == "denied"


def test_gets_are_audited_as_the_project_without_values(loaded: RemoService) -> None:
    ask(loaded.project("alpha"), {"op": "get", "name": "GITHUB_TOKEN"})
    ask(loaded.project("alpha"), {"op": "get", "name": "NPM_TOKEN"})
    who = {"event": "read", "principal": "project:alpha", "via": "remo"}
    allow = loaded.wait_audit(**who, outcome="allow", name="GITHUB_TOKEN")
    deny = loaded.wait_audit(**who, outcome="deny", name="NPM_TOKEN")
    assert (allow[-1]["uid"], deny[-1]["transport"]) == (os.getuid(), "project")


def test_no_value_reaches_the_audit_log_or_the_service_log(loaded: RemoService) -> None:
    ask(loaded.project("alpha"), {"op": "get", "name": "GITHUB_TOKEN"})
    ask(loaded.project("beta"), {"op": "get", "name": "NPM_TOKEN"})
    loaded.wait_audit(event="read", principal="project:beta", via="remo", name="NPM_TOKEN")
    written = (loaded.service.home / "data" / "audit.jsonl").read_text() + loaded.service.log()
    for value in (ALPHA_VALUE, BETA_VALUE, SHARED_VALUE):
        assert value not in written


def test_past_the_rate_limit_get_is_rate_limited(
    loaded: RemoService, wire_schema: dict[str, Any]
) -> None:
    # gamma allows 2 gets a minute: the third within the minute is refused.
    answers = [ask(loaded.project("gamma"), {"op": "get", "name": "SHARED"}) for _ in range(3)]
    assert conforms(wire_schema, "error_answer", answers[2]) == []
    assert answers[2]["error"] == "rate_limited"
    assert 1 <= answers[2]["retry_after_seconds"] <= 60
    loaded.wait_audit(event="read", principal="project:gamma", outcome="rate_limited")


def test_an_unexpected_uid_gets_peer_unexpected_and_a_close(
    remo: RemoService, wire_schema: dict[str, Any]
) -> None:
    with RemoClient(remo.project("delta")) as client:
        answer = client.ask({"op": "ping"})
        assert conforms(wire_schema, "error_answer", answer) == []
        assert answer["error"] == "peer_unexpected"
        assert client.closed_by_server()
    remo.wait_audit(event="peer_rejected", listener="project", uid=os.getuid())


def test_an_unexpected_uid_over_http_is_refused(remo: RemoService) -> None:
    with uds_client(remo.project("delta")) as client:
        assert client.get("/secrets").status_code == 403


def test_an_oversized_project_frame_is_answered_protocol_error_then_closed(
    remo: RemoService,
) -> None:
    with RemoClient(remo.project("alpha")) as client:
        client.send_raw(b'{"op":"get","name":"' + b"A" * (64 * 1024 + 1))
        answer = client.read()
        assert answer["error"] == "protocol_error"
        assert client.closed_by_server()


def test_project_sockets_take_their_configured_mode(remo: RemoService) -> None:
    modes = {name: stat.S_IMODE(os.lstat(remo.project(name)).st_mode) for name in ("alpha", "beta")}
    assert modes == {"alpha": 0o660, "beta": 0o600}


def test_a_symlink_at_a_project_socket_path_refuses_the_start(short_tmp: Any) -> None:
    run = short_tmp / "run"
    run.mkdir(mode=0o700)
    target = short_tmp / "precious.txt"
    target.write_text("keep me")
    (run / "proj.sock").symlink_to(target)
    env = {"PATINA_REMO__PROJECTS": '[{"name": "proj"}]'}
    service = ServiceProcess(home=short_tmp, env=env).start(wait=False)
    assert service.proc is not None
    assert service.proc.wait(20) == 1
    assert "is a symlink; refusing" in service.log()
    assert target.read_text() == "keep me"


def test_project_sockets_are_removed_on_sigterm(short_tmp: Any) -> None:
    env = {"PATINA_REMO__PROJECTS": '[{"name": "proj", "allowlist": ["SHARED"]}]'}
    service = ServiceProcess(home=short_tmp, env=env).start()
    path = service.run_dir / "proj.sock"
    pinged = ask(path, {"op": "ping"})
    assert (pinged["project"], service.stop(), path.exists()) == ("proj", 0, False)


def test_http_on_a_project_socket_cannot_search(remo: RemoService) -> None:
    # The project principal holds the secrets scope only.
    with uds_client(remo.project("alpha")) as client:
        answer = client.post("/api/scry", json={"query": "token"})
    assert answer.status_code == 403
