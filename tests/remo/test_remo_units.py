"""remo's pieces without a service: value encoding, the rate limit, settings, the schema."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from service.remo import wire
from service.remo.endpoints import RateLimit
from service.remo.protocol import NdjsonProtocol
from service.secrets.remo_config import RemoSettings
from service.transport.protocol import ListenerPolicy
from tests.remo.conftest import conforms
from tests.support.clock import HandClock


def test_utf8_values_travel_as_value(wire_schema: dict[str, Any]) -> None:
    answer = {"ok": True, **wire.value_fields("tökén".encode()), "ttl_seconds": 60}
    assert conforms(wire_schema, "get_answer", answer) == []
    assert answer["value"] == "tökén"


def test_other_bytes_travel_as_value_b64(wire_schema: dict[str, Any]) -> None:
    answer = {"ok": True, **wire.value_fields(b"\xde\xad\xbe\xef"), "ttl_seconds": 60}
    assert conforms(wire_schema, "get_answer", answer) == []
    assert answer == {"ok": True, "value_b64": "3q2+7w==", "ttl_seconds": 60}


def test_an_answer_with_both_encodings_does_not_conform(wire_schema: dict[str, Any]) -> None:
    both = {"ok": True, "value": "a", "value_b64": "YQ==", "ttl_seconds": 60}
    assert conforms(wire_schema, "get_answer", both) != []


def test_the_schema_lists_exactly_the_error_codes_the_service_sends(
    wire_schema: dict[str, Any],
) -> None:
    codes = {
        wire.DENIED,
        wire.NOT_FOUND,
        wire.RATE_LIMITED,
        wire.PROTOCOL_ERROR,
        wire.INTERNAL_ERROR,
        wire.PEER_UNEXPECTED,
    }
    assert set(wire_schema["$defs"]["error_answer"]["properties"]["error"]["enum"]) == codes


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "push-creds", "secrets": {"GITHUB_TOKEN": "v"}},
        {"op": "clear-creds"},
        {"op": "status"},
        {"op": "get", "name": "GITHUB_TOKEN"},
        {"op": "ping"},
        {"op": "info"},
    ],
)
def test_every_request_the_tests_send_conforms(
    wire_schema: dict[str, Any], request_: dict[str, Any]
) -> None:
    assert conforms(wire_schema, "request", request_) == []


def test_a_get_without_a_name_does_not_conform(wire_schema: dict[str, Any]) -> None:
    assert conforms(wire_schema, "request", {"op": "get"}) != []


def test_the_rate_limit_frees_a_place_after_a_minute() -> None:
    clock = HandClock()
    limit = RateLimit(2, clock=clock)
    taken = [limit.take(), limit.take(), limit.take()]
    clock.now += 60
    assert (taken[:2], taken[2] > 0, limit.take()) == ([0.0, 0.0], True, 0.0)


def test_parse_frame_rejects_duplicate_keys_without_quoting_values() -> None:
    with pytest.raises(wire.RemoError) as caught:
        wire.parse_frame(b'{"op": "get", "name": "A", "name": "s3cr3t value"}')
    assert (caught.value.code, "s3cr3t" in caught.value.message) == ("protocol_error", False)


@pytest.mark.parametrize(
    ("projects", "problem"),
    [
        ([{"name": "admin"}], "own sockets"),
        ([{"name": "a"}, {"name": "a"}], "same name"),
        ([{"name": "a", "allowlist": ["bad name"]}], "allowlist #1"),
        ([{"name": "Upper"}], "name"),
    ],
)
def test_invalid_project_settings_are_refused(projects: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RemoSettings.model_validate({"projects": projects})


def test_the_published_schema_file_is_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    path = Path(__file__).resolve().parents[2] / "docs" / "remo-wire.schema.json"
    Draft202012Validator.check_schema(json.loads(path.read_text()))


class _Failing:
    """An endpoint whose every op fails with a value in the exception's text."""

    frame_cap = 1024

    async def handle(self, conn: object, op: str, request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"failed on {request.get('secret')}")


async def _one_answer(frame: bytes) -> dict[str, Any]:
    policy = ListenerPolicy("project", allowed_uids=frozenset({os.getuid()}), project="p")
    resources = SimpleNamespace(
        settings=SimpleNamespace(keepalive_timeout_secs=5.0), peer_rejected=lambda *a: None
    )
    server_end, client_end = socket.socketpair(socket.AF_UNIX)
    loop = asyncio.get_running_loop()
    await loop.connect_accepted_socket(
        lambda: NdjsonProtocol(policy, _Failing(), resources, set()),
        server_end,
    )
    reader, writer = await asyncio.open_unix_connection(sock=client_end)
    try:
        writer.write(frame)
        answer = json.loads(await reader.readline())
    finally:
        writer.close()
    assert isinstance(answer, dict)
    return answer


@pytest.mark.anyio
async def test_an_unexpected_failure_is_internal_error_and_its_text_goes_nowhere(
    wire_schema: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    answer = await _one_answer(b'{"op": "get", "secret": "TRIPWIRE-in-a-request"}\n')
    assert conforms(wire_schema, "error_answer", answer) == []
    assert answer["error"] == "internal_error"
    assert "TRIPWIRE" not in json.dumps(answer) + caplog.text
    assert "remo request failed" in caplog.text
