"""Routes answered without FastAPI's dependency solver (service/http/lean_route.py) answer
exactly as FastAPI's own handler would: same status, headers, body and audit trail, for
every kind of caller; anything outside the lean shape keeps FastAPI's handler."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.routing import APIRoute, request_response

from service.app import CALLED_MOST, admin_routers, create_admin_app, create_app, public_routers
from service.http.lean_route import LeanRoute, lean_plan
from service.resources import Resources
from service.secrets.broker import SecretsBroker
from service.transport.connection import ConnectionInfo
from tests.secrets.helpers import (
    ADMIN,
    AGENT_TOKEN,
    CI_TOKEN,
    OTHER,
    OWNER,
    TCP,
    TRIPWIRE,
    TRIPWIRE_2,
    audit_events,
    push,
)
from tests.support.asgi import client_factory

pytestmark = pytest.mark.anyio

SET = {"GITHUB_TOKEN": TRIPWIRE, "DB_PASSWORD": TRIPWIRE_2, "DEPLOY_1": "deploy-value"}
PATHS = [
    ("GET", "/secrets"),
    ("GET", "/secrets/GITHUB_TOKEN"),
    ("GET", "/secrets/DB_PASSWORD"),  # not in OTHER's allowlist: 403
    ("GET", "/secrets/AWS_KEY"),  # allowed to OTHER, not loaded: 404
    ("GET", "/secrets/bad%20name"),
    ("GET", "/secrets/cache"),
    ("GET", "/secrets/handles"),
    ("POST", "/secrets/lock"),
    ("GET", "/health"),
    ("GET", "/version"),
    ("GET", "/api/index/status"),
]
CALLERS: list[tuple[ConnectionInfo, dict[str, str]]] = [
    (OWNER, {}),
    (OTHER, {}),
    (TCP, {}),
    (TCP, {"authorization": "Bearer pt_unknown"}),
    (TCP, {"authorization": f"Bearer {CI_TOKEN}"}),
    (TCP, {"authorization": f"Bearer {AGENT_TOKEN}"}),
]
# (/admin/status carries its uptime, which differs between the two passes.)
ADMIN_PATHS = [("GET", "/health"), ("GET", "/version")]


def _answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k != "x-request-id"]
    return response.status_code, headers, response.content


async def _answers(
    app: FastAPI, calls: list[tuple[ConnectionInfo, dict[str, str]]], paths: list[tuple[str, str]]
) -> list[Any]:
    factory = client_factory(app)
    answers = []
    for conn, headers in calls:
        async with factory(conn) as client:
            for method, path in paths:
                answers.append(_answer(await client.request(method, path, headers=headers)))
    return answers


def use_stock_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lean route answers through FastAPI's own handler instead, for this test."""
    for routers in (public_routers(), admin_routers()):
        for router in routers:
            for route in router.routes:
                if isinstance(route, LeanRoute):
                    stock = request_response(APIRoute.get_route_handler(route))
                    monkeypatch.setattr(route, "app", stock)


def _without_time(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in event.items() if k not in ("ts", "latency_us")} for event in events]


async def test_lean_routes_answer_as_fastapis_handler_for_every_caller(
    resources: Resources,
    broker: SecretsBroker,
    admin: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await push(admin, SET)
    public, admin_app = create_app(resources), create_admin_app(resources)
    before = len(audit_events(broker))
    lean = await _answers(public, CALLERS, PATHS) + await _answers(
        admin_app, [(ADMIN, {})], ADMIN_PATHS
    )
    lean_audit = _without_time(audit_events(broker)[before:])

    use_stock_handlers(monkeypatch)
    stock = await _answers(public, CALLERS, PATHS) + await _answers(
        admin_app, [(ADMIN, {})], ADMIN_PATHS
    )
    stock_audit = _without_time(audit_events(broker)[before + len(lean_audit) :])

    assert lean == stock
    assert lean_audit == stock_audit
    # The comparison covered the answers that matter: values, refusals, missing, bad input.
    statuses = {status for status, _, _ in lean}
    assert {200, 400, 401, 403, 404} <= statuses
    assert any(TRIPWIRE.encode() in body for _, _, body in lean)
    outcomes = {event.get("outcome") for event in lean_audit}
    assert {"allow", "deny", "not_found", "invalid"} <= outcomes, outcomes


def test_the_secret_reads_take_the_lean_path() -> None:
    routes = [r for router in public_routers() for r in router.routes if isinstance(r, APIRoute)]
    hot_reads = [r for r in routes if r.operation_id in CALLED_MOST and "GET" in r.methods]
    assert {r.path for r in hot_reads} >= {"/secrets", "/secrets/{name}"}
    for route in hot_reads:
        assert isinstance(route, LeanRoute)
        assert lean_plan(route) is not None, route.path


# A toy app for the shapes the service's routes do not have.

calls: list[str] = []


async def caller(request: Request) -> str:
    calls.append(request.url.path)
    if request.headers.get("x-deny"):
        raise HTTPException(403, "denied by the test")
    return "alice"


Caller = Annotated[str, Depends(caller)]


def _toy_app(route_class: type[APIRoute]) -> FastAPI:
    app = FastAPI()
    app.router.route_class = route_class

    @app.get("/items/{item_id}")
    async def item(item_id: int, who: Caller) -> dict[str, Any]:
        return {"item": item_id, "who": who}

    @app.get("/search")
    async def search(q: str, who: Caller) -> dict[str, Any]:
        return {"q": q, "who": who}

    return app


async def _toy_answers(app: FastAPI) -> list[Any]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://toy") as client:
        return [
            _answer(await client.get(path, headers=headers))
            for path, headers in [
                ("/items/7", {}),
                ("/items/seven", {}),  # 422 from FastAPI's handler
                ("/items/seven", {"x-deny": "1"}),  # the dependency's 403 comes first
                ("/search?q=x", {}),
                ("/search", {}),
            ]
        ]


async def test_bad_path_parameters_and_other_shapes_get_fastapis_answers() -> None:
    calls.clear()
    lean = await _toy_answers(_toy_app(LeanRoute))
    lean_calls = list(calls)
    calls.clear()
    assert lean == await _toy_answers(_toy_app(APIRoute))
    assert [status for status, _, _ in lean] == [200, 422, 403, 200, 422]
    # The lean path calls the dependency once, as FastAPI does; a 422 retried through
    # FastAPI's handler calls it once more (it has no side effect the caller sees).
    assert lean_calls.count("/items/7") == 1


def test_only_the_simple_shape_is_lean() -> None:
    routes = {r.path: r for r in _toy_app(LeanRoute).routes if isinstance(r, APIRoute)}
    assert lean_plan(routes["/items/{item_id}"]) is not None
    assert lean_plan(routes["/search"]) is None  # a query parameter


async def test_dependency_overrides_still_apply() -> None:
    app = _toy_app(LeanRoute)

    async def someone_else() -> str:
        return "bob"

    app.dependency_overrides[caller] = someone_else
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://toy") as client:
        assert (await client.get("/items/7")).json() == {"item": 7, "who": "bob"}
