"""Who is calling: one dependency turns a connection and its headers into a Principal.

* Public and admin Unix sockets: the peer's uid (SO_PEERCRED) against the listener's policy;
  the transport layer has already answered 403 to peers outside it.
* TCP: a bearer token, compared in constant time; with mutual TLS the certificate subject
  joins the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from service.errors import Forbidden, Unauthorized
from service.principal import ADMIN_SCOPES, LOCAL_SCOPES, PROJECT_SCOPES, Principal
from service.resources import Resources
from service.tokens import TokenStore
from service.transport.connection import ConnectionInfo, connection_of


async def get_resources(request: Request) -> Resources:
    # async: a plain def dependency would hop to the thread pool on every request.
    return resources_of(request)


def resources_of(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


BEARER_DESCRIPTION = "Token for TCP callers; sockets need none."


class Authenticate(SecurityBase):
    """The caller of a request as one FastAPI dependency, optionally demanding a scope.

    It is a security scheme (HTTP bearer), so OpenAPI documents the token on every route
    that uses it, and it has no sub-dependencies: FastAPI solves each dependency anew on
    every request, and a tree of small ones (resources, bearer header, principal, scope)
    cost more than the rest of an authenticated route together (bench/core)."""

    def __init__(self, scope: str | None = None) -> None:
        self.model = HTTPBearerModel(description=BEARER_DESCRIPTION)
        # One scheme name for every instance: one entry in the spec's securitySchemes.
        self.scheme_name = "HTTPBearer"
        self.scope = scope

    async def __call__(self, request: Request) -> Principal:
        principal = authenticate(request)
        if self.scope is not None and not principal.has(self.scope):
            raise Forbidden(f"caller lacks the '{self.scope}' scope")
        return principal


T = TypeVar("T")


class CallerWith(Authenticate, Generic[T]):
    """Authenticate (demanding `scope`) and hand the route, with its caller, what it calls,
    as one dependency: `build(caller, resources)`. A route that needs its caller and a
    domain service would otherwise take two, and FastAPI solves each anew on every request
    (about 10 us apiece here, bench/core)."""

    def __init__(self, scope: str, build: Callable[[Principal, Resources], T]) -> None:
        super().__init__(scope)
        self.build = build

    async def __call__(self, request: Request) -> T:  # type: ignore[override]
        return self.build(await super().__call__(request), resources_of(request))


def authenticate(request: Request) -> Principal:
    """Resolve the caller or raise 401/403. Every non-public route depends on this."""
    conn = connection_of(request.scope)
    principal = principal_for(conn, token_for(conn, request), resources_of(request).tokens)
    request.scope["patina.principal"] = principal.name
    return principal


# Callers known by their socket peer alone: `principal_for` reads no token for them.
SOCKET_TRANSPORTS = frozenset({"uds", "admin", "project"})


def token_for(conn: ConnectionInfo | None, request: Request) -> str | None:
    """The bearer token `principal_for` needs for this connection: None for a socket
    caller, whose headers are then not parsed at all (a measurable share of a secret
    read, BENCHMARKS.md); a token a socket caller sends is ignored either way."""
    if conn is None or conn.transport in SOCKET_TRANSPORTS:
        return None
    return bearer_token(request)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def principal_for(conn: ConnectionInfo | None, token: str | None, tokens: TokenStore) -> Principal:
    """The caller of a connection: a socket peer by its uid, a TCP caller by its bearer
    token (and client certificate). Raises 401 for a missing or unknown token, 403 for a
    connection no listener vouched for."""
    if conn is None:
        # No listener tagged this request: nothing vouches for it.
        raise Forbidden("connection has no identity")
    if conn.transport == "project":
        return project_principal(conn)
    if conn.transport in SOCKET_TRANSPORTS:
        assert conn.peer is not None
        scopes = ADMIN_SCOPES if conn.transport == "admin" else LOCAL_SCOPES
        return Principal(
            transport=conn.transport,
            name=f"uid:{conn.peer.uid}",
            scopes=scopes,
            uid=conn.peer.uid,
            gid=conn.peer.gid,
            pid=conn.peer.pid or None,
        )
    if token is None:
        raise Unauthorized()
    record = tokens.verify(token)
    if record is None:
        raise Unauthorized()
    name = f"token:{record.name}"
    if conn.cert_subject:
        name += f"/cert:{conn.cert_subject}"
    return Principal(
        transport=conn.transport,
        name=name,
        scopes=record.scopes,
        token_name=record.name,
        cert_subject=conn.cert_subject,
    )


def project_principal(conn: ConnectionInfo) -> Principal:
    """A caller on a project socket: the project, whatever its uid (every devcontainer may
    run as uid 1000). It holds the secrets scope only; the project's allowlist decides."""
    assert conn.peer is not None
    assert conn.project is not None
    return Principal(
        transport="project",
        name=f"project:{conn.project}",
        scopes=PROJECT_SCOPES,
        uid=conn.peer.uid,
        gid=conn.peer.gid,
        pid=conn.peer.pid or None,
        project=conn.project,
    )


Caller = Annotated[Principal, Depends(Authenticate())]


def require_scope(scope: str) -> Authenticate:
    """A dependency that passes only callers holding `scope` (403 otherwise)."""
    return Authenticate(scope)
