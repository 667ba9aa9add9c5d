"""The stdio server's backend turns each refusal of the service (gate full, deadline, not
found) into a tool error carrying the service's message, over a real MCP session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.shared.memory import create_client_server_memory_streams

from service.client import Target
from service.mcp.catalogue import offered
from service.mcp.config import McpSettings
from service.mcp.remote import RemoteTools
from service.mcp.tools import Context, build_server
from tests.mcp.helpers import failed

pytestmark = pytest.mark.anyio


def _answering(status: int, body: dict[str, str], headers: dict[str, str]) -> RemoteTools:
    tools = RemoteTools(Target(socket=None, url="https://patina.test"), McpSettings())
    tools.client.close()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    tools.client = httpx.Client(
        transport=httpx.MockTransport(handler), base_url="https://patina.test"
    )
    return tools


@asynccontextmanager
async def session_with(tools: RemoteTools) -> AsyncIterator[ClientSession]:
    def backend_for(ctx: Context) -> RemoteTools:
        return tools

    server = build_server(backend_for, offered(run=False))
    async with (
        create_client_server_memory_streams() as (client, served),
        anyio.create_task_group() as group,
    ):
        group.start_soon(server.run, served[0], served[1], server.create_initialization_options())
        async with ClientSession(client[0], client[1]) as session:
            await session.initialize()
            yield session
        group.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("status", "message", "headers"),
    [
        (503, "server busy, retry shortly", {"Retry-After": "1"}),
        (504, "query exceeded its deadline", {}),
        (404, "no chunk 5 in the index (re-indexed since? scry again)", {}),
    ],
)
async def test_service_refusals_are_tool_errors_with_its_message(
    status: int, message: str, headers: dict[str, str]
) -> None:
    tools = _answering(status, {"error": message}, headers)
    async with session_with(tools) as session:
        scry = await session.call_tool("scry", {"query": "retry"})
        detail = await session.call_tool("scry_detail", {"id": 5})
    tools.close()
    assert failed(scry) == f"{message} (HTTP {status})"
    assert failed(detail) == f"{message} (HTTP {status})"


async def test_an_answer_outside_the_contract_is_a_tool_error() -> None:
    tools = _answering(200, {"surprise": "yes"}, {})
    async with session_with(tools) as session:
        scry = await session.call_tool("scry", {"query": "retry"})
    tools.close()
    assert failed(scry) == "the service's answer to /api/scry did not fit its contract"
