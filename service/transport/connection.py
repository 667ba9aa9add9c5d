"""What the listener knows about a connection, carried into every request's scope.

uvicorn does not put Unix-socket peer credentials or TLS client certificates in the ASGI
scope, so our protocol (transport/protocol.py) reads them once per connection and stores a
ConnectionInfo in the scope's `state`. Tests that call the app directly use `with_connection`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.types import ASGIApp, Receive, Scope, Send

Transport = Literal["uds", "admin", "project", "tcp", "metrics"]
STATE_KEY = "patina.conn"


@dataclass(frozen=True)
class PeerCred:
    """SO_PEERCRED of a Unix-socket peer. pid is 0 across a container boundary."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class ConnectionInfo:
    transport: Transport
    peer: PeerCred | None = None
    peer_allowed: bool = True
    cert_subject: str | None = None
    project: str | None = None  # the project socket the connection arrived on


def read_peer_cred(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCred(pid=pid, uid=uid, gid=gid)


def connection_of(scope: MutableMapping[str, Any]) -> ConnectionInfo | None:
    state = scope.get("state") or {}
    info = state.get(STATE_KEY)
    return info if isinstance(info, ConnectionInfo) else None


def with_connection(app: ASGIApp, info: ConnectionInfo) -> ASGIApp:
    """`app` with every request carrying `info`, as a real listener would tag it (tests
    call apps in-process this way)."""

    async def tagged_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["state"] = {**scope.get("state", {}), STATE_KEY: info}
        await app(scope, receive, send)

    return tagged_app
