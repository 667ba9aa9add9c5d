"""The HTTP contract every route shares: JSON errors, headers, auth, body cap."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.core.conftest import STRANGER, TCP, TEST_TOKEN
from tests.support.asgi import ClientFactory

pytestmark = pytest.mark.anyio

# A key a caller typed where a field name goes: it may be a value pasted in the wrong place.
CALLER_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


async def test_health_and_version_answer_the_patina_contract(owner: httpx.AsyncClient) -> None:
    health = (await owner.get("/health")).json()
    assert health["status"] == "ok"
    assert set(health) == {"status", "version", "uptime_secs"}
    assert (await owner.get("/version")).json()["name"] == "patina-serve"


async def test_tcp_health_is_open_but_metrics_need_a_token(client_as: ClientFactory) -> None:
    async with client_as(TCP) as tcp:
        assert (await tcp.get("/health")).status_code == 200
        denied = await tcp.get("/metrics")
        assert denied.status_code == 401
        assert denied.json() == {"error": "missing or invalid bearer token"}
        assert denied.headers["www-authenticate"] == "Bearer"
        wrong = await tcp.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await tcp.get("/metrics", headers={"Authorization": f"Bearer {TEST_TOKEN}"})
        assert ok.status_code == 200


async def test_socket_peer_outside_the_policy_gets_403_and_a_log_line(
    client_as: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="patina.http")
    async with client_as(STRANGER) as stranger:
        response = await stranger.get("/health")
    assert response.status_code == 403
    assert response.json() == {"error": "peer uid 54321 is not allowed on this socket"}
    assert any("socket peer refused" in r.getMessage() for r in caplog.records)


async def test_unknown_route_and_wrong_method_answer_json(owner: httpx.AsyncClient) -> None:
    missing = await owner.get("/no/such/route")
    assert (missing.status_code, missing.json()) == (404, {"error": "not found"})
    wrong = await owner.delete("/health")
    assert (wrong.status_code, wrong.json()) == (405, {"error": "method not allowed"})


async def test_malformed_json_gets_a_readable_422(owner: httpx.AsyncClient) -> None:
    response = await owner.post(
        "/_test/echo", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "malformed JSON" in response.json()["error"]


async def test_wrong_field_type_names_the_field(owner: httpx.AsyncClient) -> None:
    response = await owner.post("/_test/echo", json={"text": "x", "count": "many"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("invalid request: body.count:")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/secrets/cache", {"secrets": {CALLER_KEY: 1}}),
    ],
)
async def test_a_422_never_repeats_a_key_the_caller_chose(
    owner: httpx.AsyncClient, path: str, body: dict[str, object]
) -> None:
    response = await owner.post(path, json=body)
    assert response.status_code == 422
    assert CALLER_KEY not in response.text
    assert "<key>" in response.json()["error"]


async def test_unhandled_error_is_a_bare_500(owner: httpx.AsyncClient) -> None:
    response = await owner.get("/_test/crash")
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}
    assert "shadow" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_every_response_carries_security_headers_and_no_cors(
    owner: httpx.AsyncClient,
) -> None:
    for path in ("/health", "/nope"):
        response = await owner.get(path, headers={"Origin": "https://evil.example"})
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert not any(h.startswith("access-control-") for h in response.headers)


async def test_request_id_is_generated_or_echoed_when_safe(owner: httpx.AsyncClient) -> None:
    first = (await owner.get("/health")).headers["x-request-id"]
    second = (await owner.get("/metrics")).headers["x-request-id"]
    assert first != second
    assert first.split("-")[0] == second.split("-")[0]  # one boot prefix, a counter after it
    echoed = await owner.get("/health", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    unsafe = await owner.get("/health", headers={"X-Request-Id": "a b\x7f"})
    assert unsafe.headers["x-request-id"] != "a b\x7f"


async def test_declared_oversize_body_is_refused_before_reading(owner: httpx.AsyncClient) -> None:
    response = await owner.post(
        "/_test/echo", content=b"{}", headers={"content-length": str(2 * 1024 * 1024)}
    )
    assert response.status_code == 413
    assert "exceeds" in response.json()["error"]


async def test_streamed_body_over_the_cap_is_refused_whatever_it_declares(
    owner: httpx.AsyncClient,
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield b" " * 32768  # 2 MiB, no Content-Length: chunked

    response = await owner.post(
        "/_test/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    # ...and the app keeps serving.
    assert (await owner.post("/_test/echo", json={"text": "still here"})).json()["text"] == (
        "still here"
    )


async def test_invalid_content_length_is_400(owner: httpx.AsyncClient) -> None:
    response = await owner.post("/_test/echo", content=b"{}", headers={"content-length": "-1"})
    assert response.status_code == 400


async def test_unidentified_connection_is_refused(app) -> None:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as bare:
        assert (await bare.get("/metrics")).status_code == 403
        assert (await bare.get("/health")).status_code == 200


async def test_metrics_use_route_templates_and_count_rejections(
    owner: httpx.AsyncClient, client_as: ClientFactory
) -> None:
    await owner.get("/no/such/route?q=secret-query")
    async with client_as(STRANGER) as stranger:
        await stranger.get("/health")
    text = (await owner.get("/metrics")).text
    assert 'route="unmatched"' in text
    assert "no/such/route" not in text
    assert "secret-query" not in text
    assert 'http_rejected_total{reason="peer"} 1.0' in text
    assert "patina_build_info" in text
