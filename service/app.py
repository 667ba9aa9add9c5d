"""App factories: the public API, the admin API and the metrics-only app.

The public app serves the public Unix socket and TLS TCP. The admin app is a separate
FastAPI instance served only on the admin socket, so its routes do not exist anywhere else
(they are absent, not merely forbidden). All apps share one Resources.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service import NAME, __version__
from service.http import core_routes
from service.http.error_handlers import http_exception_handler, validation_exception_handler
from service.http.hardening import HardeningMiddleware
from service.http.wire import error_body, json_headers, with_security_headers
from service.knowledge import detail_routes
from service.knowledge import routes as knowledge_routes
from service.resources import Resources
from service.secrets import admin_routes as secrets_admin_routes
from service.secrets import handles_routes
from service.secrets import routes as secrets_routes

API_DESCRIPTION = """\
Hybrid search over a project's knowledge and an agent-safe secrets broker.

Callers on the Unix socket are authenticated by their uid (SO_PEERCRED); callers over TCP
send `Authorization: Bearer <token>`. Every error body is `{"error": "<message>"}`.
"""


def _operation_id(route: APIRoute) -> str:
    # Stable ids so generated clients get readable method names (`scry`, `health`, ...).
    return route.name


# Routes are tried one by one, and each one tried before the one that matches costs about
# 1 us here (bench/core): the routes called most go first, in this order, then the rest in
# their routers' order. `/secrets/{name}` takes any one-segment path, so the static
# `GET /secrets/...` routes come before it (a test checks).
CALLED_MOST = (
    "secrets_cache_get",
    "secrets_handle_list",
    "secrets_read",
    "secrets_list",
    "secrets_resolve",
    "secrets_handle_resolve",
)


def route_table(routers: list[APIRouter]) -> list[BaseRoute]:
    """One flat table of the routers' routes, the routes called most first."""
    rank = {operation: place for place, operation in enumerate(CALLED_MOST)}
    routes = [route for router in routers for route in router.routes]
    return sorted(routes, key=lambda route: rank.get(getattr(route, "operation_id", ""), len(rank)))


def _api(*, title: str, routers: list[APIRouter]) -> FastAPI:
    """The routes, error handlers and OpenAPI settings of an app: everything but the
    resources it serves (so its OpenAPI document can be built without opening them)."""
    app = FastAPI(
        # One flat route table: an included router stays nested in this FastAPI, searched
        # router by router on every request (about 16 us per request, BENCHMARKS.md). The
        # answers an app would give its included routers are each router's own (routers.py).
        routes=route_table(routers),
        title=title,
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url=None,  # served by core_routes behind authentication
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=_operation_id,
        # No OpenTelemetry spans or metrics from FastAPI itself: our own metrics are
        # low-cardinality by rule, and spans could carry request data.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    return app


def _serving(app: FastAPI, resources: Resources, *, max_body: int) -> FastAPI:
    app.state.resources = resources
    app.add_middleware(
        HardeningMiddleware,
        resources=resources,
        max_body=max_body,
        fast_routes=core_routes.FAST_ROUTES,
    )
    return app


def public_routers() -> list[APIRouter]:
    """Routers of the public API (their routes are tried in `route_table`'s order)."""
    return [
        handles_routes.router,
        secrets_routes.router,
        knowledge_routes.router,
        detail_routes.router,
        core_routes.router,
    ]


def admin_routers() -> list[APIRouter]:
    """Routers of the admin socket."""
    return [core_routes.router, secrets_admin_routes.router]


def create_app(resources: Resources) -> FastAPI:
    """The public API (public Unix socket and TLS TCP), with MCP at `/mcp` when served."""
    app = _api(title=NAME, routers=public_routers())
    if resources.mcp is not None:
        # A plain ASGI route: MCP is JSON-RPC, outside the OpenAPI document. POST only: the
        # endpoint is stateless, so it has no session to DELETE and no server-sent stream
        # to GET (one would hold a connection open for nothing); both get 405.
        app.router.routes.append(Route("/mcp", resources.mcp, methods=["POST"]))
    return _serving(app, resources, max_body=resources.settings.max_body_bytes)


def create_admin_app(resources: Resources) -> FastAPI:
    """The admin API, served only on the admin socket."""
    # Its only body is a push of the whole set, capped by its own setting.
    app = _api(title=f"{NAME} admin", routers=admin_routers())
    return _serving(app, resources, max_body=resources.settings.secrets.max_push_bytes)


def openapi_document(*, admin: bool = False) -> dict[str, Any]:
    """The OpenAPI document of the public API (or the admin socket's), built from the
    routes alone: no resources are opened."""
    if admin:
        return _api(title=f"{NAME} admin", routers=admin_routers()).openapi()
    return _api(title=NAME, routers=public_routers()).openapi()


def create_metrics_app(resources: Resources) -> ASGIApp:
    """The plain metrics port: `/metrics` and nothing else, no authentication."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            body, content_type = resources.metrics.render()
            status = 200
            headers = [(b"content-type", content_type.encode())]
            headers.append((b"content-length", b"%d" % len(body)))
        else:
            status, body = 404, error_body("not found")
            headers = json_headers(body)
        headers = with_security_headers(headers)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
