"""`patina mcp`: the MCP server an agent spawns, over its stdin and stdout.

It is a client of the running service (remote.py): it serves the same catalogue as `/mcp`,
and secrets_run as well when `mcp.secrets_run` is on (the command then runs here, beside
the agent, as the agent's user). It ends when its stdin closes, and on SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import sys

import anyio

from service.client import Target
from service.mcp.catalogue import offered
from service.mcp.config import McpSettings
from service.mcp.remote import RemoteTools
from service.mcp.tools import Context, build_server


async def serve_stdio(target: Target, settings: McpSettings) -> None:
    """Serve MCP on stdin/stdout until stdin closes or a stop signal arrives."""
    # Imported here: the SDK's stdio transport claims fds 0 and 1 while it serves.
    from mcp.server.stdio import stdio_server

    tools = RemoteTools(target, settings)

    def backend_for(ctx: Context) -> RemoteTools:
        return tools

    server = build_server(backend_for, offered(run=settings.secrets_run))
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, tools)
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
            group.cancel_scope.cancel()
    finally:
        _stop_commands()
        tools.close()


async def _stop_on_signal(tools: RemoteTools) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _signum in signals:
            _stop_commands()
            tools.close()
            sys.stderr.flush()
            # The SDK reads stdin on a worker thread that no cancellation interrupts (it
            # returns with a line or at EOF), and the interpreter would wait for it at exit:
            # leave now. Nothing is lost: every answer was flushed as it was written, and
            # the commands secrets_run started are stopped above.
            os._exit(0)


def _stop_commands() -> None:
    if "service.mcp.run_tool" in sys.modules:
        from service.mcp.run_tool import stop_all

        stop_all()
