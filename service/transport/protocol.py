"""Our HTTP protocol: uvicorn's httptools protocol plus per-connection identity and guards.

* Identity: a Unix-socket peer's SO_PEERCRED (pid, uid, gid) or a TLS client certificate's
  subject (RFC 4514, service/subjects.py) is read once per connection and placed in every
  request's `scope["state"]`.
* Header guards uvicorn lacks: request line + headers over the cap answer 431, and headers
  that do not arrive complete within the header timeout answer 408 (slowloris).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.http.wire import raw_error_response
from service.subjects import subject_of_certificate
from service.transport.connection import (
    STATE_KEY,
    ConnectionInfo,
    Transport,
    read_peer_cred,
)

log = logging.getLogger("patina.transport")
_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


@dataclass(frozen=True)
class ListenerPolicy:
    """What a listener enforces on each connection."""

    transport: Transport
    allowed_uids: frozenset[int] = frozenset()
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    max_connections: int = 1024
    tls_handshake_timeout: float = 5.0
    # TCP listeners close a connection over the cap the moment it is accepted: a flood
    # from the network must never hold more descriptors than the cap. Local sockets keep
    # it open long enough to answer a JSON 503.
    refuse_over_cap_at_accept: bool = False
    # A project socket (transport "project"): the project every caller on it acts for.
    project: str | None = None


def identify(policy: ListenerPolicy, transport: asyncio.BaseTransport) -> ConnectionInfo:
    """Who is on the other end of a new connection, as the listener's policy judges it."""
    kind = policy.transport
    if kind in ("uds", "admin", "project"):
        sock = transport.get_extra_info("socket")
        peer = read_peer_cred(sock)
        allowed = peer.uid in policy.allowed_uids
        return ConnectionInfo(kind, peer=peer, peer_allowed=allowed, project=policy.project)
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return ConnectionInfo(transport=kind, cert_subject=subject_of_certificate(der))


class GuardedProtocol(HttpToolsProtocol):
    """Set `policy` on a subclass (see `protocol_for`)."""

    policy: ListenerPolicy

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused_at_accept = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limit = self.policy.max_connections
        if self.policy.refuse_over_cap_at_accept and len(self.connections) >= limit:
            self._refused_at_accept = True
            transport.abort()
            return
        super().connection_made(transport)
        info = self._identify(transport)
        # app_state is copied into every request's scope["state"]; make it per connection.
        self.app_state = {**self.app_state, STATE_KEY: info}
        self._arm_header_timer()

    def _identify(self, transport: asyncio.Transport) -> ConnectionInfo:
        return identify(self.policy, transport)

    # -- header guards -------------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._awaiting_headers = True
        self._header_bytes = 0
        self._header_timer = self.loop.call_later(
            self.policy.header_timeout, self._header_timeout_expired
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            if self._header_bytes:
                self._reject(408, "request headers arrived too slowly")
            else:
                self.transport.close()  # an idle connection: nothing to answer

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._awaiting_headers
            and self._header_bytes > self.policy.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._reject(431, "request headers too large")

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_timer()
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.policy.max_header_bytes:
            self._reject(431, "request headers too large")
            return
        # The connection cap, enforced here rather than by uvicorn's limit_concurrency so
        # the refusal is our JSON error with security headers (and the connection closes,
        # returning its place at once).
        limit = self.policy.max_connections
        if len(self.connections) > limit or len(self.tasks) >= limit:
            self._reject(503, "too many connections, retry shortly")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():  # a rejected request's body is dropped
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.transport.is_closing():
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's header phase starts now, unless a pipelined one already runs.
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._refused_at_accept:
            return  # never took a place: nothing of uvicorn's to clean up
        super().connection_lost(exc)

    def _reject(self, status: int, message: str) -> None:
        retry = ((b"retry-after", b"1"),) if status == 503 else ()
        answer = raw_error_response(status, _REASONS[status], message, extra=retry)
        log.warning(message, extra={"fields": {"transport": self.policy.transport}})
        self._awaiting_headers = False
        self.transport.write(answer)
        self.transport.close()


def protocol_for(policy: ListenerPolicy) -> type[GuardedProtocol]:
    """A protocol class bound to one listener's policy (uvicorn instantiates it per connection)."""
    return type(f"GuardedProtocol_{policy.transport}", (GuardedProtocol,), {"policy": policy})
