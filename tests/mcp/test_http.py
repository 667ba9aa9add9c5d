"""MCP over Streamable HTTP at `/mcp`, driven by the SDK's client through the real public
app: the tools answer as the REST routes do, for the same caller, with the same scopes,
gate, deadline, body cap and scrubbing; no answer or error carries a secret value."""

from __future__ import annotations

import re

import pytest
from mcp.shared.exceptions import MCPError

from service.knowledge.embedder import Embedder
from service.resources import Resources
from service.settings import Settings
from tests.mcp.conftest import (
    FULL_TOKEN,
    OWNER,
    SCRY_ONLY_TOKEN,
    SECRETS,
    TCP,
    TRIPWIRE,
    TRIPWIRE_B64,
    http_client,
    mcp_session,
    open_service,
)
from tests.mcp.helpers import EXPECTED_TOOLS, HANDLE_PATTERN, failed, ok, structured, text_of

pytestmark = pytest.mark.anyio


async def test_initialize_lists_the_catalogue_with_schemas_and_instructions(
    resources: Resources,
) -> None:
    async with mcp_session(resources) as session:
        tools = (await session.list_tools()).tools
        info = await session.initialize()
    assert [tool.name for tool in tools] == EXPECTED_TOOLS  # secrets_run is never served here
    by_name = {tool.name: tool for tool in tools}
    scry = by_name["scry"].input_schema
    assert scry["required"] == ["query"]
    assert set(scry["properties"]) == {"query", "limit", "mode", "repo", "kind", "path_prefix"}
    assert scry["additionalProperties"] is False
    assert by_name["scry_detail"].input_schema["required"] == ["id"]
    assert all(tool.description for tool in tools)
    assert info.server_info.name == "patina-serve"
    assert info.instructions is not None
    assert "scry_detail" in info.instructions


async def test_scry_gives_compact_results_and_detail_reads_the_whole_chunk(
    resources: Resources,
) -> None:
    async with mcp_session(resources) as session:
        found = await session.call_tool("scry", {"query": "compute_backoff_delay", "limit": 3})
        top = structured(found)["results"][0]
        detail = await session.call_tool("scry_detail", {"id": top["id"]})
    text = ok(found)
    assert re.search(r"src/retry\.py:\d+-\d+\s+score [0-9.]+\s+defines compute_backoff_delay", text)
    assert top["location"].startswith("src/retry.py:")
    assert "def compute_backoff_delay(" in top["snippet"]
    assert f"id {top['id']}" in text
    whole = ok(detail)
    assert "return random.uniform(0, min(cap, base * 2**attempt))" in whole
    assert "self.spent <= self.limit" in whole  # the whole chunk, not the snippet
    chunk = structured(detail)
    assert chunk["chunk"]["id"] == top["id"]
    assert chunk["before"] == chunk["after"] == []


async def test_detail_with_neighbours_reads_the_chunks_around_it_in_file_order(
    resources: Resources,
) -> None:
    async with mcp_session(resources) as session:
        found = await session.call_tool("scry", {"query": "Rolling back previous image tag"})
        top = structured(found)["results"][0]
        detail = await session.call_tool("scry_detail", {"id": top["id"], "neighbours": 1})
    assert top["location"].startswith("docs/deploy.md:5-")
    chunk = structured(detail)
    assert [v["start_line"] for v in chunk["before"]] == [1]
    assert [v["start_line"] for v in chunk["after"]] == [14]
    assert {v["path"] for v in chunk["before"] + chunk["after"]} == {"docs/deploy.md"}
    text = ok(detail)
    # In file order: the heading before, the chunk, the migrations after.
    assert text.index("# Deployment") < text.index("redeploy") < text.index("Migrations run")


async def test_detail_of_an_unknown_id_says_to_scry_again(resources: Resources) -> None:
    async with mcp_session(resources) as session:
        missing = await session.call_tool("scry_detail", {"id": 987654})
    assert "no chunk 987654" in failed(missing)
    assert "scry again" in failed(missing)


async def test_index_status_and_secret_tools(resources: Resources) -> None:
    async with mcp_session(resources) as session:
        status = await session.call_tool("index_status", {})
        names = await session.call_tool("secrets_list", {})
        minted = await session.call_tool("secret_handle", {"name": "DEPLOY_KEY", "uses": 2})
    assert structured(status)["chunks"] == resources.knowledge.chunk_count > 0  # type: ignore[union-attr]
    assert "chunks searchable" in ok(status)
    assert structured(names)["names"] == sorted(SECRETS)
    info = structured(minted)
    assert re.fullmatch(HANDLE_PATTERN, info["handle"])
    assert info["name"] == "DEPLOY_KEY"
    assert info["uses_left"] == 2
    # A real handle, bound to this caller: the REST route resolves it for the same peer.
    async with http_client(resources, OWNER, None) as rest:
        resolved = await rest.post("/secrets/handles/resolve", json={"handles": [info["handle"]]})
    assert resolved.status_code == 200
    assert resolved.json()["secrets"][0]["value"] == TRIPWIRE


async def test_unknown_tool_is_a_protocol_error_naming_the_tools(resources: Resources) -> None:
    async with mcp_session(resources) as session:
        with pytest.raises(MCPError) as raised:
            await session.call_tool("secrets_dump", {})
        with pytest.raises(MCPError) as run_raised:
            await session.call_tool("secrets_run", {"command": ["true"]})
    assert "unknown tool" in str(raised.value)
    assert "scry, scry_detail" in str(raised.value)
    assert "secrets_dump" not in str(raised.value)
    assert "secrets_run is off: only `patina mcp` (stdio" in str(run_raised.value)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("scry", {}, "query: Field required"),
        ("scry", {"query": ""}, "query: String should have at least 1 character"),
        ("scry", {"query": "x", "limit": 0}, "limit: Input should be greater than or equal to 1"),
        ("scry", {"query": "x", "mode": "fuzzy"}, "mode: Input should be"),
        ("scry", {"query": "x", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ("scry_detail", {"id": "seven"}, "id: Input should be a valid integer"),
        ("scry_detail", {"id": 1, "neighbours": 99}, "neighbours: Input should be less than"),
        ("secret_handle", {"name": "DEPLOY_KEY", "ttl_secs": -1}, "ttl_secs"),
    ],
)
async def test_bad_arguments_are_tool_errors_the_model_can_correct(
    resources: Resources, tool: str, arguments: dict[str, object], expected: str
) -> None:
    async with mcp_session(resources) as session:
        answer = await session.call_tool(tool, arguments)
        # The session still serves after a bad call.
        after = await session.call_tool("secrets_list", {})
    assert expected in failed(answer)
    assert f"invalid arguments for {tool}" in failed(answer)
    ok(after)


async def test_a_bad_value_is_never_echoed_in_the_error(resources: Resources) -> None:
    async with mcp_session(resources) as session:
        answer = await session.call_tool("scry_detail", {"id": TRIPWIRE})
        handle = await session.call_tool("secret_handle", {"name": TRIPWIRE})
    assert "id: Input should be a valid integer" in failed(answer)
    assert TRIPWIRE not in failed(answer) + failed(handle)


async def test_tcp_callers_need_a_token_and_each_tool_its_scope(resources: Resources) -> None:
    async with mcp_session(resources, TCP, SCRY_ONLY_TOKEN) as session:
        found = await session.call_tool("scry", {"query": "espresso"})
        names = await session.call_tool("secrets_list", {})
        handle = await session.call_tool("secret_handle", {"name": "DEPLOY_KEY"})
        status = await session.call_tool("index_status", {})
    ok(found)
    assert failed(names) == "caller lacks the 'secrets' scope"
    assert failed(handle) == "caller lacks the 'secrets' scope"
    assert failed(status) == "caller lacks the 'index' scope"
    async with mcp_session(resources, TCP, FULL_TOKEN) as session:
        # Token callers are named by no allowlist here: the broker lists nothing for them.
        assert structured(await session.call_tool("secrets_list", {}))["names"] == []
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with http_client(resources, TCP, None) as anonymous:
        refused = await anonymous.post("/mcp", json=body)
    async with http_client(resources, TCP, "pt_wrong") as wrong:
        wrong_answer = await wrong.post("/mcp", json=body)
    assert refused.status_code == wrong_answer.status_code == 401
    assert refused.json() == {"error": "missing or invalid bearer token"}
    assert refused.headers["www-authenticate"] == "Bearer"


async def test_browser_origins_and_oversized_bodies_are_refused_with_error_bodies(
    resources: Resources,
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    big = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "pad": "'
        + b"x" * (resources.settings.max_body_bytes + 10)
        + b'"}'
    )
    async with http_client(resources, OWNER, None) as client:
        browser = await client.post("/mcp", json=body, headers={"Origin": "https://evil.test"})
        too_big = await client.post(
            "/mcp", content=big, headers={"Content-Type": "application/json"}
        )
        health = await client.get("/health")
    assert browser.status_code == 403
    assert browser.json() == {"error": "requests from browser origins are refused"}
    assert browser.headers["x-content-type-options"] == "nosniff"
    assert too_big.status_code == 413
    assert "error" in too_big.json()
    assert health.status_code == 200  # and the service keeps serving


async def test_a_full_gate_and_a_deadline_are_tool_errors(
    indexed: Settings, embedder: Embedder
) -> None:
    settings = indexed.model_copy(update={"max_concurrent_queries": 1})
    async with open_service(settings, embedder) as resources, mcp_session(resources) as session:
        assert resources.queries.gate.try_acquire()  # a query in flight holds the only slot
        try:
            busy = await session.call_tool("scry", {"query": "retry"})
            busy_detail = await session.call_tool("scry_detail", {"id": 1})
        finally:
            resources.queries.gate.release()
        after = await session.call_tool("scry", {"query": "retry"})
    assert failed(busy) == "server busy, retry shortly"
    assert failed(busy_detail) == failed(busy)
    ok(after)
    slow = indexed.model_copy(update={"query_timeout_ms": 1})
    async with open_service(slow, embedder) as resources, mcp_session(resources) as session:
        late = await session.call_tool("scry", {"query": "retry budget " * 400, "mode": "semantic"})
    assert failed(late) == "query exceeded its deadline"


async def test_no_tool_answer_or_error_carries_a_held_value(
    resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    answers = []
    async with mcp_session(resources) as session:
        for mode in ("hybrid", "lexical", "semantic"):
            found = await session.call_tool("scry", {"query": "deploy key pasted", "mode": mode})
            answers.append(found)
            for hit in structured(found)["results"]:
                answers.append(
                    await session.call_tool("scry_detail", {"id": hit["id"], "neighbours": 2})
                )
        answers.append(await session.call_tool("scry", {"query": TRIPWIRE}))
        answers.append(await session.call_tool("secret_handle", {"name": "DEPLOY_KEY"}))
        answers.append(await session.call_tool("secret_handle", {"name": "NOT_THERE"}))
        answers.append(await session.call_tool("secrets_list", {}))
    texts = [answer.model_dump_json() for answer in answers]
    planted = [t for t in texts if "${secret:DEPLOY_KEY}" in t]
    assert planted, "the planted file was found and shown with its placeholder"
    for text in texts:
        assert TRIPWIRE not in text
        assert TRIPWIRE_B64 not in text
    assert TRIPWIRE not in caplog.text
    # The audit writer gathers events on its own thread: wait until it wrote them all.
    assert resources.broker.audit.flush(5.0)
    audit = resources.settings.resolved_data_dir / "audit.jsonl"
    assert TRIPWIRE not in audit.read_text()
    assert "mint" in audit.read_text()  # minting over MCP is audited as over REST
    assert all(text_of(a) for a in answers)


async def test_only_post_is_served_and_malformed_messages_echo_nothing(
    resources: Resources,
) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    bad_params = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "scry", "arguments": TRIPWIRE},
    }
    async with http_client(resources, OWNER, None) as client:
        # Stateless: no server-sent stream to GET (it would hold a connection for nothing),
        # no session to DELETE.
        stream = await client.get("/mcp", headers=headers)
        delete = await client.delete("/mcp", headers=headers)
        garbled = await client.post(
            "/mcp", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
        )
        invalid = await client.post("/mcp", json=bad_params, headers=headers)
    assert stream.status_code == delete.status_code == 405
    assert stream.json() == {"error": "method not allowed"}
    assert garbled.status_code == 400
    assert garbled.json()["error"]["code"] == -32700
    assert invalid.json()["error"]["code"] == -32602
    assert TRIPWIRE not in invalid.text
