"""Reading MCP tool answers in tests."""

from __future__ import annotations

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
