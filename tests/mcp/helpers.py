"""Reading MCP tool answers in tests, and speaking to a spawned `patina mcp` by hand."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import mcp_types as types

HANDLE_PATTERN = r"<secret:[0-9a-f]{32}>"
EXPECTED_TOOLS = ["scry", "scry_detail", "index_status", "secrets_list", "secret_handle"]


def text_of(result: types.CallToolResult) -> str:
    """The text the model reads."""
    return "\n".join(part.text for part in result.content if isinstance(part, types.TextContent))


def ok(result: types.CallToolResult) -> str:
    """The text of a successful answer (the test fails with the error otherwise)."""
    assert not result.is_error, text_of(result)
    return text_of(result)


def failed(result: types.CallToolResult) -> str:
    """The text of a failed tool call."""
    assert result.is_error, text_of(result)
    return text_of(result)


def structured(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text_of(result)
    return result.structured_content


def initialize_over_pipes(proc: subprocess.Popen[bytes]) -> None:
    """Send `initialize` to a spawned stdio server and check it answers as patina-serve."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    proc.stdin.write((json.dumps(request) + "\n").encode())
    proc.stdin.flush()
    answer = json.loads(proc.stdout.readline())
    assert answer["result"]["serverInfo"]["name"] == "patina-serve"
