"""`/mcp` on the real listeners of `patina serve`: the public Unix socket (the peer's uid
is the caller) and the TLS port (a bearer token and its scopes)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from service.client import ssl_context
from tests.mcp.conftest import FULL_TOKEN, SCRY_ONLY_TOKEN, SECRETS, TRIPWIRE, LiveService
from tests.mcp.helpers import EXPECTED_TOOLS, failed, ok, structured

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def session_over(client: httpx2.AsyncClient, url: str) -> AsyncIterator[ClientSession]:
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _tls_client(live: LiveService, token: str | None) -> httpx2.AsyncClient:
    context: ssl.SSLContext = ssl_context(live.certs.ca, None, None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(verify=context, headers=headers, timeout=30)


async def test_mcp_on_the_unix_socket_answers_as_the_peer(live: LiveService) -> None:
    transport = httpx2.AsyncHTTPTransport(uds=str(live.process.socket))
    client = httpx2.AsyncClient(transport=transport, timeout=30)
    async with session_over(client, "http://patina.local/mcp") as session:
        tools = [tool.name for tool in (await session.list_tools()).tools]
        found = await session.call_tool("scry", {"query": "deploy key pasted"})
        names = await session.call_tool("secrets_list", {})
    assert tools == EXPECTED_TOOLS
    assert "${secret:DEPLOY_KEY}" in ok(found)
    assert TRIPWIRE not in found.model_dump_json()
    assert structured(names)["names"] == sorted(SECRETS)
    assert "transport=uds" in live.process.wait_for_log("route=/mcp")


async def test_mcp_over_tls_takes_the_token_and_its_scopes(live: LiveService) -> None:
    async with session_over(_tls_client(live, SCRY_ONLY_TOKEN), f"{live.url}/mcp") as session:
        found = await session.call_tool("scry", {"query": "espresso machine"})
        names = await session.call_tool("secrets_list", {})
    assert "notes/office.txt" in ok(found)
    assert failed(names) == "caller lacks the 'secrets' scope"
    async with session_over(_tls_client(live, FULL_TOKEN), f"{live.url}/mcp") as session:
        status = await session.call_tool("index_status", {})
    assert structured(status)["chunks"] > 0
    async with _tls_client(live, None) as anonymous:
        refused = await anonymous.post(
            f"{live.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        )
    assert refused.status_code == 401
    assert refused.json() == {"error": "missing or invalid bearer token"}
    assert "principal=token:full" in live.process.wait_for_log("principal=token:full")
    for token in (SCRY_ONLY_TOKEN, FULL_TOKEN):
        assert token not in live.texts_written()
