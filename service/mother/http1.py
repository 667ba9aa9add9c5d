"""A small keep-alive HTTP/1.1 client for mother nodes: one request at a time per pooled
connection, over a Unix socket or TLS.

Why not httpx: a federated scry waits for every node, so the client's own CPU sits on the
critical path once per node, and on this machine httpx spends about 0.6 ms of CPU per
request (measured side by side: bench/mother, BENCHMARKS.md) where asyncio streams need
a few tens of microseconds. The requests are always alike (a POST with a JSON body; the
answer framed by Content-Length, chunked, or the end of the connection), which is little
to parse. Answers are read with a size cap: a node is a peer, not a trusted party.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

from service.socket_peer import ExpectedServer, WrongPeer

MAX_HEAD_BYTES = 64 * 1024
# Framing numbers as RFC 9112 writes them: digits only. Python's int() also takes a sign,
# underscores, spaces and non-ASCII digits ("-5", "1_0", "²"), which a node could send.
_DECIMAL = re.compile(r"[0-9]{1,18}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


class AnswerTooLarge(Exception):
    """The node sent more than the answer cap."""


class ProtocolError(Exception):
    """The node's answer is not HTTP/1.1 this client can read."""


class NodeUnreachable(Exception):
    """No connection could be made (refused, no such socket, TLS handshake failed)."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass(frozen=True)
class PoolLimits:
    """How big answers and the pool may get, and how long an idle connection is kept."""

    answer_cap: int
    max_connections: int = 32
    max_idle: int = 8
    idle_expiry: float = 4.0


class _StaleConnection(Exception):
    """A pooled connection ended before any byte of the answer: the node closed it while
    it sat idle, so the request may be sent again on a fresh one."""


class Http1Pool:
    """Pooled connections to one node; `request` returns (status, body bytes)."""

    def __init__(
        self,
        *,
        uds: str | None = None,
        host: str = "localhost",
        port: int = 0,
        host_header: str = "localhost",
        ssl_context: ssl.SSLContext | None = None,
        limits: PoolLimits,
        expected: ExpectedServer | None = None,
    ) -> None:
        self.uds = uds
        # Over a Unix socket, who must be at the other end (checked before sending).
        self.expected = expected
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.answer_cap = limits.answer_cap
        self.max_idle = limits.max_idle
        self.idle_expiry = limits.idle_expiry
        self.host_header = host_header
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limits.max_connections)
        self._closed = False

    async def request(
        self, method: str, path: str, *, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        """Send one request and read its whole answer (capped). Raises NodeUnreachable,
        AnswerTooLarge, ProtocolError or OSError; cancelling it closes its connection."""
        head = self._head(method, path, body, headers)
        async with self._slots:
            for _attempt in range(2):
                conn, reused = await self._acquire()
                try:
                    status, answer, keep = await self._exchange(conn, head + body, reused=reused)
                except _StaleConnection:
                    conn.close()
                    continue
                except BaseException:
                    # Cancelled or failed part-way: the connection's state is unknown.
                    conn.close()
                    raise
                if keep:
                    self._release(conn)
                else:
                    conn.close()
                return status, answer
        raise ProtocolError("the node closed the connection without answering")

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- connections ----------------------------------------------------------------------

    async def _acquire(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            # Past the expiry the node may be closing it (its keep-alive is 5 s).
            if now - conn.idle_since < self.idle_expiry and not conn.reader.at_eof():
                return conn, True
            conn.close()
        return await self._connect(), False

    async def _connect(self) -> _Connection:
        try:
            if self.uds is not None:
                reader, writer = await asyncio.open_unix_connection(self.uds, limit=MAX_HEAD_BYTES)
            else:
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host if self.ssl_context else None,
                    limit=MAX_HEAD_BYTES,
                )
        except ssl.SSLError as exc:
            raise NodeUnreachable(f"TLS handshake failed: {exc.reason or 'SSL error'}") from None
        except OSError as exc:
            # asyncio's own strerror ("Connect call failed (...)") hides the reason.
            reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or "")
            raise NodeUnreachable(reason or type(exc).__name__) from None
        if self.uds is not None and self.expected is not None:
            try:
                self.expected.check(writer.get_extra_info("socket"), self.uds)
            except WrongPeer as exc:
                writer.close()
                raise NodeUnreachable(f"wrong peer: {exc.brief}") from None
        return _Connection(reader, writer)

    def _release(self, conn: _Connection) -> None:
        if self._closed or len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    # -- one exchange ---------------------------------------------------------------------

    def _head(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _exchange(
        self, conn: _Connection, data: bytes, *, reused: bool
    ) -> tuple[int, bytes, bool]:
        try:
            conn.writer.write(data)
            await conn.writer.drain()
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if reused and not exc.partial:
                raise _StaleConnection() from None
            raise ProtocolError("the node closed the connection mid-answer") from None
        except (ConnectionResetError, BrokenPipeError):
            if reused:
                raise _StaleConnection() from None
            raise
        except asyncio.LimitOverrunError:
            raise ProtocolError("answer headers too large") from None
        status, fields, version = _parse_head(head)
        answer, framed = await self._read_body(conn.reader, fields)
        keep = framed and version == "HTTP/1.1" and "close" not in fields.get("connection", "")
        return status, answer, keep

    async def _read_body(
        self, reader: asyncio.StreamReader, fields: dict[str, str]
    ) -> tuple[bytes, bool]:
        """The answer's body and whether it was framed (else it ran to the connection's end)."""
        try:
            if "chunked" in fields.get("transfer-encoding", ""):
                return await self._read_chunked(reader), True
            declared = fields.get("content-length")
            if declared is not None:
                if not _DECIMAL.fullmatch(declared):
                    raise ProtocolError("invalid Content-Length in the answer")
                if int(declared) > self.answer_cap:
                    raise AnswerTooLarge()
                return await reader.readexactly(int(declared)), True
            body = await reader.read(self.answer_cap + 1)
            while chunk := await reader.read(self.answer_cap + 1 - len(body)):
                body += chunk
                if len(body) > self.answer_cap:
                    break
            if len(body) > self.answer_cap:
                raise AnswerTooLarge()
            return body, False
        except asyncio.IncompleteReadError:
            raise ProtocolError("the node closed the connection mid-answer") from None
        except asyncio.LimitOverrunError:
            raise ProtocolError("answer framing line too long") from None

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise ProtocolError("invalid chunk size line")
            size = int(size_text, 16)
            if size == 0:
                # Trailer fields, up to the empty line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(body)
            if len(body) + size > self.answer_cap:
                raise AnswerTooLarge()
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")


def _parse_head(head: bytes) -> tuple[int, dict[str, str], str]:
    """(status, lower-cased header fields, HTTP version) of an answer's head."""
    try:
        text = head.decode("latin-1")
        status_line, *lines = text[:-4].split("\r\n")
        version, code, *_reason = status_line.split(" ", 2)
        status = int(code)
    except ValueError:
        raise ProtocolError("malformed status line") from None
    if not version.startswith("HTTP/1.") or not 100 <= status <= 599:
        raise ProtocolError("malformed status line")
    fields: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError("malformed header line")
        key = name.strip().lower()
        value = value.strip()
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return status, fields, version
