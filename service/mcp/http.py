"""MCP over Streamable HTTP at `/mcp`, on the public Unix socket and the TLS port.

A request reaches this endpoint through the same listeners and hardening middleware as a
REST route (peer policy, body cap, body timeout, security headers, metrics, access log),
is authenticated the same way (peer uid on a socket, bearer token and scopes over TCP), and
each tool then calls the domain as that caller (in_process.py).

The SDK's transport runs stateless with JSON answers: every POST carries one JSON-RPC
message and gets one JSON answer, so no session outlives its request (no session of one
caller to be reused by another) and no response stream stays open past the keep-alive.
Its session manager needs a task group for its whole life: `open_mcp_endpoint` is entered
by the composition root (bootstrap), not by an app lifespan, which uvicorn would run on one
listener only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from service.auth import principal_for, token_for
from service.errors import Forbidden, ServiceError
from service.http.wire import error_body, json_headers
from service.knowledge.scry import Scry
from service.mcp.backend import ToolError
from service.mcp.catalogue import offered
from service.mcp.in_process import InProcessTools
from service.mcp.tools import Context, build_server
from service.principal import Principal
from service.secrets.broker import SecretsBroker
from service.tokens import TokenStore
from service.transport.connection import connection_of

PATH = "/mcp"
# Where the endpoint leaves the authenticated caller for the tools (the SDK hands each
# tool call the Starlette request, and so this scope).
CALLER_KEY = "patina.mcp.caller"


class McpEndpoint:
    """The ASGI app served at `/mcp`."""

    # Read from scope["route"] by the access log and the metrics (a plain ASGI route is
    # not recorded there by the router, unlike a FastAPI route).
    path = PATH

    def __init__(self, manager: StreamableHTTPSessionManager, tokens: TokenStore) -> None:
        self.manager = manager
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        scope["route"] = self
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            self.authenticate(scope)
            await self.manager.handle_request(scope, receive, watched)
        except ServiceError as exc:
            # 401/403 here, or the body cap (413) and body timeout (408) raised by the
            # hardening middleware's receive while the SDK reads the body.
            if started:
                raise
            await _send_error(send, exc)

    def authenticate(self, scope: Scope) -> Principal:
        """The caller, as a REST route would see it; 401/403 otherwise."""
        for name, _value in scope["headers"]:
            # A browser page (DNS rebinding, a hostile site) announces its Origin; agents
            # send none. No CORS is offered, so no browser may talk to this endpoint.
            if name == b"origin":
                raise Forbidden("requests from browser origins are refused")
        conn = connection_of(scope)
        caller = principal_for(conn, token_for(conn, Request(scope)), self.tokens)
        scope["patina.principal"] = caller.name  # for the access log, as auth.py does
        scope[CALLER_KEY] = caller
        return caller


async def _send_error(send: Send, exc: ServiceError) -> None:
    body = error_body(exc.message)
    headers = json_headers(body)
    headers += [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
    if exc.status in (400, 408, 413):
        # The rest of the body is unread: close rather than parse it as a next request.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def open_mcp_endpoint(
    *, scry: Scry, broker: SecretsBroker, tokens: TokenStore, max_body: int
) -> AsyncIterator[McpEndpoint]:
    """The `/mcp` endpoint, its session manager running until exit. `max_body` is the
    public app's body cap (the SDK's own cap is set to the same)."""

    def backend_for(ctx: Context) -> InProcessTools:
        request = ctx.request
        caller = request.scope.get(CALLER_KEY) if request is not None else None
        if not isinstance(caller, Principal):
            raise ToolError("no authenticated caller")
        return InProcessTools(caller=caller, scry_entry=scry, broker=broker)

    server = build_server(backend_for, offered(run=False))
    manager = StreamableHTTPSessionManager(
        server, json_response=True, stateless=True, max_request_body_size=max_body
    )
    async with manager.run():
        yield McpEndpoint(manager, tokens)
