"""Settings of the MCP channel (nested under `mcp` in Settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field

MIB = 1024 * 1024


class McpSettings(BaseModel):
    """The `/mcp` endpoint of the service and the `patina mcp` stdio server."""

    http_enabled: bool = Field(
        True, description="Serve MCP (Streamable HTTP) at /mcp on the public socket and TLS."
    )
    secrets_run: bool = Field(
        False,
        description="`patina mcp`: offer the secrets_run tool (runs the agent's commands "
        "with secrets injected; see docs/agents.md).",
    )
    run_timeout_secs: float = Field(
        60.0, gt=0, le=3600, description="secrets_run: default and largest timeout."
    )
    run_output_cap_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * MIB, description="secrets_run: default and largest output."
    )
