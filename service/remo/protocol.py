"""remo's NDJSON on a Unix socket, sharing the socket with HTTP.

A socket that speaks remo (the admin socket with `remo.enabled`, every project socket) also
keeps speaking HTTP: the first byte decides. An HTTP request starts with a method name
(a letter); a remo request is a JSON object, so its first non-blank byte is `{`. No byte
is consumed by the choice: the chosen protocol sees the stream from its start.

Per connection: requests are answered in order, one line each. A line longer than the
socket's frame cap is answered `protocol_error` and the connection closed (never a silent
close); a peer whose uid the socket does not allow gets `peer_unexpected` and a close; a
partial line must complete within the header timeout, and an idle connection closes after
the keep-alive timeout, as on HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any, cast

from service.remo.endpoints import Endpoint
from service.remo.wire import (
    INTERNAL_ERROR,
    PEER_UNEXPECTED,
    PROTOCOL_ERROR,
    RATE_LIMITED,
    RemoError,
    encode,
    parse_frame,
)
from service.resources import Resources
from service.transport.connection import ConnectionInfo
from service.transport.protocol import GuardedProtocol, ListenerPolicy, identify

log = logging.getLogger("patina.remo")

_BLANK = b" \t\r\n"
# Frames queued before reading pauses: a client pipelining without reading answers
# cannot make the service buffer without bound.
_MAX_QUEUED = 32
_OVERSIZED = object()


class NdjsonProtocol(asyncio.Protocol):
    """One remo connection: frames in, answers out, in order."""

    def __init__(
        self,
        policy: ListenerPolicy,
        endpoint: Endpoint,
        resources: Resources,
        connections: set[Any],
    ) -> None:
        self.policy = policy
        self.endpoint = endpoint
        self.resources = resources
        self.connections = connections  # uvicorn's, so a graceful stop waits for us too
        self.transport: asyncio.Transport | None = None
        self.conn: ConnectionInfo | None = None
        self._buffer = bytearray()
        self._frames: deque[object] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False

    # asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.conn = identify(self.policy, transport)
        self.connections.add(self)
        self._arm_timer(self.policy.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            frame = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._queue(frame)
        if len(self._buffer) > self.endpoint.frame_cap:
            self._buffer.clear()
            self._queue(_OVERSIZED)
        if self._buffer:
            # A partial frame must complete within the header timeout.
            self._arm_timer(self.policy.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.connections.discard(self)
        self._cancel_timer()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()

    def shutdown(self) -> None:
        """uvicorn's graceful stop: finish the frame in hand, then close."""
        self._closing = True
        self._frames.clear()
        if self._worker is None or self._worker.done():
            self._close()

    # Frames --------------------------------------------------------------------------
    def _queue(self, frame: object) -> None:
        if isinstance(frame, bytes) and not frame.strip(_BLANK):
            return  # blank lines between frames are harmless
        self._frames.append(frame)
        if len(self._frames) >= _MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()
        if self._worker is None or self._worker.done():
            self._cancel_timer()
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        while self._frames and not self._closing:
            frame = self._frames.popleft()
            answer, last = await self._answer(frame)
            self._write(answer)
            if last:
                self._closing = True
                self._close()
                return
            if len(self._frames) < _MAX_QUEUED // 2 and self.transport is not None:
                self.transport.resume_reading()
        if self._closing:
            self._close()
        elif not self._buffer:
            self._arm_timer(self.resources.settings.keepalive_timeout_secs)

    async def _answer(self, frame: object) -> tuple[dict[str, Any], bool]:
        """The answer to one frame, and whether the connection ends after it."""
        assert self.conn is not None
        if not self.conn.peer_allowed:
            self._refuse_peer()
            uid = self.conn.peer.uid if self.conn.peer else "?"
            return RemoError(PEER_UNEXPECTED, f"peer uid {uid} is not allowed").answer(), True
        if frame is _OVERSIZED:
            cap = self.endpoint.frame_cap
            message = f"request exceeds the {cap}-byte frame cap"
            return RemoError(PROTOCOL_ERROR, message).answer(), True
        if len(self.connections) > self.policy.max_connections:
            return RemoError(RATE_LIMITED, "too many connections, retry shortly").answer(), True
        assert isinstance(frame, bytes)
        try:
            op, request = parse_frame(frame)
            return await self.endpoint.handle(self.conn, op, request), False
        except RemoError as exc:
            return exc.answer(), False
        except Exception as exc:
            # Only the exception's type, never its text or traceback: either might hold
            # part of a request, and requests carry values.
            fields = {**self._where(), "error": type(exc).__name__}
            log.error("remo request failed", extra={"fields": fields})
            return RemoError(INTERNAL_ERROR, "internal error").answer(), False

    def _refuse_peer(self) -> None:
        assert self.conn is not None
        assert self.conn.peer is not None
        log.warning(
            "socket peer refused",
            extra={"fields": {**self._where(), "uid": self.conn.peer.uid}},
        )
        self.resources.peer_rejected(self.conn, self.policy.transport)

    def _where(self) -> dict[str, Any]:
        return {"transport": self.policy.transport, "project": self.policy.project}

    # Plumbing ------------------------------------------------------------------------
    def _write(self, answer: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(answer))

    def _close(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # after the buffered answer is written

    def _arm_timer(self, secs: float) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(secs, self._expired)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._buffer:
            self._buffer.clear()
            self._write(RemoError(PROTOCOL_ERROR, "request line arrived too slowly").answer())
        self._closing = True
        self._close()


class SniffingProtocol(asyncio.Protocol):
    """Hands the connection to HTTP or to remo's NDJSON by its first non-blank byte.
    Set `policy`, `http`, `endpoint` and `resources` on a subclass (see `sniffing_for`)."""

    policy: ListenerPolicy
    http: type[GuardedProtocol]
    endpoint: Endpoint
    resources: Resources

    def __init__(self, **uvicorn_args: Any) -> None:
        # uvicorn's (config, server_state, app_state, _loop), kept for the HTTP protocol.
        self._uvicorn_args = uvicorn_args
        self._transport: asyncio.Transport | None = None
        self._delegate: asyncio.Protocol | None = None
        self._seen = bytearray()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        # Nothing said within the header timeout: an idle connection, closed.
        self._timer = asyncio.get_running_loop().call_later(
            self.policy.header_timeout, transport.close
        )

    def data_received(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.data_received(data)
            return
        self._seen += data
        first = self._seen.lstrip(_BLANK)[:1]
        if not first:
            if len(self._seen) > self.policy.max_header_bytes and self._transport is not None:
                self._transport.close()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._delegate = self._choose(first == b"{")
        assert self._transport is not None
        self._delegate.connection_made(self._transport)
        seen, self._seen = bytes(self._seen), bytearray()
        self._delegate.data_received(seen)

    def _choose(self, ndjson: bool) -> asyncio.Protocol:
        if ndjson:
            state = self._uvicorn_args["server_state"]
            return NdjsonProtocol(self.policy, self.endpoint, self.resources, state.connections)
        return self.http(**self._uvicorn_args)

    def eof_received(self) -> bool | None:
        return self._delegate.eof_received() if self._delegate is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._delegate is not None:
            self._delegate.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.pause_writing()

    def resume_writing(self) -> None:
        if self._delegate is not None:
            with contextlib.suppress(RuntimeError):
                self._delegate.resume_writing()


def sniffing_for(
    policy: ListenerPolicy, http: type[GuardedProtocol], endpoint: Endpoint, resources: Resources
) -> type[SniffingProtocol]:
    """A protocol class for one listener that speaks both HTTP (`http`) and remo."""
    attrs = {"policy": policy, "http": http, "endpoint": endpoint, "resources": resources}
    return type(f"Sniffing_{policy.transport}", (SniffingProtocol,), attrs)
