"""The mother nodes' HTTP/1.1 client against small scripted servers on a Unix socket:
framing (Content-Length, chunked, close-delimited), keep-alive reuse, stale pooled
connections, the answer cap, malformed answers, refused connections and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from service.mother.http1 import (
    AnswerTooLarge,
    Http1Pool,
    NodeUnreachable,
    PoolLimits,
    ProtocolError,
)

pytestmark = pytest.mark.anyio

Answer = Callable[[bytes], Awaitable[bytes | None]]  # request bytes -> raw answer (None: hang)
CAP = 64 * 1024


class Scripted:
    """A Unix-socket server that answers each request with `answer(request)`, then keeps
    the connection unless the answer says close. Counts connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(Exception):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                raw = await self.answer(request)
                if raw is None:
                    await asyncio.sleep(3600)
                    return
                writer.write(raw)
                await writer.drain()
                if b"connection: close" in raw.lower():
                    break
        writer.close()


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, answer: Answer) -> AsyncIterator[tuple[Scripted, Http1Pool]]:
    script = Scripted(answer)
    path = str(tmp_path / "node.sock")
    server = await asyncio.start_unix_server(script.handle, path)
    pool = Http1Pool(uds=path, limits=PoolLimits(answer_cap=CAP))
    try:
        yield script, pool
    finally:
        await pool.aclose()
        for writer in script.writers:
            writer.close()
        server.close()


def fixed(raw: bytes) -> Answer:
    async def answer(_request: bytes) -> bytes:
        return raw

    return answer


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


async def post(pool: Http1Pool, body: bytes = b'{"q":1}') -> tuple[int, bytes]:
    return await pool.request("POST", "/api/scry", body=body, headers={"X-Test": "1"})


async def test_a_request_carries_host_length_and_headers_and_the_answer_is_read(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, fixed(OK)) as (script, pool):
        assert await post(pool) == (200, b'{"ok":true}')
    head, body = script.requests[0].split(b"\r\n\r\n")
    assert head.startswith(b"POST /api/scry HTTP/1.1\r\n")
    assert b"\r\nHost: localhost" in head
    assert b"\r\nX-Test: 1" in head
    assert b"\r\nContent-Length: 7" in head
    assert body == b'{"q":1}'


async def test_keep_alive_connections_are_reused(tmp_path: Path) -> None:
    async with serving(tmp_path, fixed(OK)) as (script, pool):
        for _ in range(5):
            assert (await post(pool))[0] == 200
    assert script.connections == 1
    assert len(script.requests) == 5


async def test_chunked_answers_are_reassembled(tmp_path: Path) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    async with serving(tmp_path, fixed(raw)) as (script, pool):
        assert await post(pool) == (200, b'{"a":1}')
        assert await post(pool) == (200, b'{"a":1}')
    assert script.connections == 1


async def test_an_answer_delimited_by_close_is_read_to_the_end_and_not_reused(
    tmp_path: Path,
) -> None:
    raw = b'HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n{"error":"no"}'
    async with serving(tmp_path, fixed(raw)) as (script, pool):
        assert await post(pool) == (404, b'{"error":"no"}')
        assert await post(pool) == (404, b'{"error":"no"}')
    assert script.connections == 2


async def test_a_pooled_connection_the_node_closed_is_replaced_transparently(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, fixed(OK)) as (script, pool):
        assert (await post(pool))[0] == 200
        for writer in script.writers:  # the node drops its idle keep-alive connection
            writer.close()
        await asyncio.sleep(0.05)
        assert (await post(pool))[0] == 200
    assert script.connections == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (CAP + 1),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (CAP + 1),
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * (CAP + 1),
    ],
    ids=["declared", "chunked", "close-delimited"],
)
async def test_answers_over_the_cap_are_refused(tmp_path: Path, raw: bytes) -> None:
    async with serving(tmp_path, fixed(raw)) as (_script, pool):
        with pytest.raises(AnswerTooLarge):
            await post(pool)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{}", "mid-answer"),
    ],
)
async def test_malformed_answers_are_protocol_errors(
    tmp_path: Path, raw: bytes, message: str
) -> None:
    async with serving(tmp_path, fixed(raw)) as (_script, pool):
        with pytest.raises(ProtocolError, match=message):
            await post(pool)


async def test_a_missing_socket_is_unreachable(tmp_path: Path) -> None:
    pool = Http1Pool(uds=str(tmp_path / "nobody.sock"), limits=PoolLimits(answer_cap=CAP))
    with pytest.raises(NodeUnreachable, match="No such file"):
        await post(pool)
    await pool.aclose()


async def test_a_refused_tcp_connection_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        pool = Http1Pool(host="127.0.0.1", port=port, limits=PoolLimits(answer_cap=CAP))
        with pytest.raises(NodeUnreachable, match="refused"):
            await post(pool)
        await pool.aclose()


async def test_a_cancelled_request_closes_its_connection_and_the_next_one_works(
    tmp_path: Path,
) -> None:
    calls = 0

    async def first_hangs(_request: bytes) -> bytes | None:
        nonlocal calls
        calls += 1
        return None if calls == 1 else OK

    async with serving(tmp_path, first_hangs) as (script, pool):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await post(pool)
        # The half-used connection was not pooled: the next request opens a new one.
        assert await post(pool) == (200, b'{"ok":true}')
    assert script.connections == 2
