"""MCP tools: one catalogue served over stdio (`patina mcp`) and Streamable HTTP (`/mcp`)."""
