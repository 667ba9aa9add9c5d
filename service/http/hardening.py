"""HTTP hardening as one pure-ASGI middleware (one layer keeps the per-request cost low).

Per request: a request id, the socket peer policy (403), the body cap counted on the
stream whatever Content-Length says (413), a timeout between body chunks (408), security
headers on every response, a JSON 500 that reveals nothing, metrics and one access line.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, ServiceError
from service.event_log import EventLog
from service.http.wire import error_body, json_body, json_headers, with_security_headers
from service.resources import Resources
from service.transport.connection import connection_of

log = logging.getLogger("patina.http")
# One line per request, through the logging configuration (service/event_log.py).
access_line = EventLog(logging.getLogger("patina.access"), "request")

_REQUEST_ID_OK = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
# Probed every second by health checks and the sidecar: logged at debug, not info.
QUIET_ROUTES = frozenset({"/health", "/admin/status"})


# A GET answered by the middleware itself: resources -> JSON-able payload.
FastRoute = Callable[[Resources], dict[str, Any]]


class RequestTimeout(ServiceError):
    status = 408


class HardeningMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        resources: Resources,
        max_body: int,
        fast_routes: Mapping[str, FastRoute] | None = None,
    ) -> None:
        """`max_body` caps request bodies (413), however they arrive: the one body cap of
        the app this middleware guards."""
        self.app = app
        self.resources = resources
        self.metrics = resources.metrics.http
        self.max_body = max_body
        self.body_timeout = resources.settings.body_timeout_secs
        # GET routes answered here without FastAPI's routing (health probes arrive every
        # second); their FastAPI twins stay registered for OpenAPI.
        self.fast_routes = fast_routes or {}
        self._request_ids = itertools.count(1)
        self._id_prefix = resources.boot_id[:12]
        # Labelled metric children, cached: `.labels()` is a measurable share of a request.
        self._observers: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}
        self._in_flight: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        conn = connection_of(scope)
        transport = conn.transport if conn else "asgi"
        request_id = self._request_id(scope)
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = with_security_headers(list(message.get("headers", [])))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        in_flight = self._in_flight.get(transport)
        if in_flight is None:
            in_flight = self._in_flight[transport] = self.metrics.in_flight.labels(transport)
        in_flight.inc()
        route = "unmatched"
        try:
            rejection = self._reject_early(scope, conn, transport)
            fast = self.fast_routes.get(scope["path"]) if scope["method"] == "GET" else None
            if rejection is not None:
                await _send_error(send_wrapper, *rejection)
            elif fast is not None:
                route = scope["path"]
                await _send_json(send_wrapper, 200, fast(self.resources))
            else:
                await self.app(scope, self._capped_receive(receive), send_wrapper)
                route = _route(scope)
        except Exception:
            route = _route(scope)
            log.exception(
                "unhandled error", extra={"fields": {"request_id": request_id, "route": route}}
            )
            if not response_started:
                await _send_error(send_wrapper, 500, "internal server error")
        finally:
            in_flight.dec()
            elapsed = time.perf_counter() - started
            if route == "unmatched":
                route = _route(scope)
            self._observe(route, scope["method"], status, transport, elapsed)
            level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
            if access_line.enabled_for(level):
                access_line.write(
                    level,
                    {
                        "request_id": request_id,
                        "transport": transport,
                        "principal": scope.get("patina.principal", "-"),
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )

    def _observe(self, route: str, method: str, status: int, transport: str, secs: float) -> None:
        key = (route, method, status, transport)
        children = self._observers.get(key)
        if children is None:
            children = (
                self.metrics.requests.labels(route, method, str(status), transport),
                self.metrics.duration.labels(route, method, transport),
            )
            self._observers[key] = children
        children[0].inc()
        children[1].observe(secs)

    def _request_id(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _REQUEST_ID_OK.match(value):
                return bytes(value).decode()
        # Unique within this boot; cheaper than uuid4 on every request.
        return f"{self._id_prefix}-{next(self._request_ids):x}"

    def _reject_early(self, scope: Scope, conn: Any, transport: str) -> tuple[int, str] | None:
        """Refusals that need no handler: a disallowed socket peer, a declared oversize body."""
        if conn is not None and not conn.peer_allowed:
            uid = conn.peer.uid if conn.peer else "?"
            log.warning(
                "socket peer refused",
                extra={"fields": {"transport": transport, "uid": uid, "pid": conn.peer.pid}},
            )
            self.metrics.rejected.labels("peer").inc()
            self.resources.peer_rejected(conn, transport)
            return 403, f"peer uid {uid} is not allowed on this socket"
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    self.metrics.rejected.labels("bad_length").inc()
                    return 400, "invalid Content-Length"
                if int(value) > self.max_body:
                    self.metrics.rejected.labels("body_size").inc()
                    return 413, f"request body exceeds {self.max_body} bytes"
        return None

    def _capped_receive(self, receive: Receive) -> Receive:
        received = 0
        max_body, timeout, rejected = self.max_body, self.body_timeout, self.metrics.rejected

        async def wrapped() -> Message:
            nonlocal received
            try:
                async with asyncio.timeout(timeout):
                    message = await receive()
            except TimeoutError:
                rejected.labels("body_timeout").inc()
                raise RequestTimeout("request body arrived too slowly") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    rejected.labels("body_size").inc()
                    raise PayloadTooLarge(f"request body exceeds {max_body} bytes")
            return message

        return wrapped


def _route(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    return str(path) if isinstance(path, str) else "unmatched"


async def _send_json(send: Send, status: int, payload: Any) -> None:
    await _send(send, status, json_body(payload))


async def _send_error(send: Send, status: int, message: str) -> None:
    # The rest of the body is unread: close rather than parse garbage as a next request.
    await _send(send, status, error_body(message), close=status in (400, 413))


async def _send(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = json_headers(body)
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
