"""A mother node is a peer, not a trusted party: whatever it answers, the federated scry
marks that node failed and returns the others' results (never a 500)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.bootstrap import open_resources
from service.settings import load_settings
from service.transport.connection import ConnectionInfo, PeerCred, with_connection

pytestmark = pytest.mark.anyio

GOOD_RESULT = {
    "id": 7,
    "content": "roll back with the previous image tag",
    "score": 0.9,
    "repo": "good",
    "path": "docs/rollback.md",
}
GOOD_BODY = json.dumps({"results": [GOOD_RESULT], "count": 1}).encode()
GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(GOOD_BODY), GOOD_BODY)

BAD_ANSWERS = {
    "negative-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n",
    "signed-length": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "non-ascii-digit": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nhi",
}


@contextlib.asynccontextmanager
async def node_answering(path: Path, raw: bytes) -> AsyncIterator[None]:
    """A Unix-socket node that reads one request and answers `raw`, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(raw)
            await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(handle, str(path))
    try:
        yield
    finally:
        server.close()


@pytest.mark.parametrize("answer", sorted(BAD_ANSWERS))
async def test_a_malformed_answer_fails_that_node_and_the_others_are_returned(
    short_tmp: Path, answer: str
) -> None:
    good, bad = short_tmp / "good.sock", short_tmp / "bad.sock"
    settings = load_settings(
        home=short_tmp / "home",
        knowledge={"enabled": False},
        mothers=[
            {"name": "good", "url": f"unix://{good}"},
            {"name": "bad", "url": f"unix://{bad}"},
        ],
    )
    async with (
        node_answering(good, GOOD),
        node_answering(bad, BAD_ANSWERS[answer]),
        open_resources(settings) as resources,
    ):
        app = with_connection(create_app(resources), ConnectionInfo("uds", peer=PeerCred(1, 0, 0)))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/api/scry", json={"query": "rollback", "federate": True})
    assert response.status_code == 200, response.text
    answer_json = response.json()
    nodes = {node["node"]: node for node in answer_json["nodes"]}
    assert nodes["good"]["status"] == "ok"
    assert nodes["bad"]["status"] == "error"
    assert nodes["bad"]["error"].startswith("bad answer: invalid")
    assert [r["content"] for r in answer_json["results"]] == [GOOD_RESULT["content"]]
