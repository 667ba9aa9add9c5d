"""The MCP server both transports run: it lists the catalogue and dispatches each call to
its backend, turning every failure into an answer fit for a model (and never a traceback).

Protocol errors: an unknown tool (JSON-RPC invalid params). Tool errors (`isError`, so the
model can correct itself): arguments that do not fit the schema, a missing scope or
allowlist entry, a busy gate, a deadline, a service that is down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError

from service import __version__
from service.errors import ServiceError
from service.mcp import render
from service.mcp.backend import ToolBackend, ToolError
from service.mcp.catalogue import (
    ALL_TOOLS,
    DETAIL_TOOL,
    HANDLE_TOOL,
    INSTRUCTIONS,
    LIST_TOOL,
    RUN_TOOL,
    SCRY_TOOL,
    STATUS_TOOL,
    DetailArgs,
    HandleArgs,
    RunArgs,
    ScryArgs,
    ToolSpec,
)

log = logging.getLogger("patina.mcp")

Context = ServerRequestContext[Any, Any]
BackendFor = Callable[[Context], ToolBackend]
Call = Callable[[ToolBackend, Any], Awaitable[types.CallToolResult]]


async def _scry(backend: ToolBackend, args: ScryArgs) -> types.CallToolResult:
    return render.scry_answer(await backend.scry(args.request()), args.query)


async def _detail(backend: ToolBackend, args: DetailArgs) -> types.CallToolResult:
    return render.detail_answer(await backend.chunk(args.id, neighbours=args.neighbours))


async def _status(backend: ToolBackend, args: BaseModel) -> types.CallToolResult:
    return render.status_answer(await backend.index_status())


async def _names(backend: ToolBackend, args: BaseModel) -> types.CallToolResult:
    return render.names_answer(await backend.secret_names())


async def _handle(backend: ToolBackend, args: HandleArgs) -> types.CallToolResult:
    info = await backend.mint_handle(args.name, ttl_secs=args.ttl_secs, uses=args.uses)
    return render.handle_answer(info)


async def _run(backend: ToolBackend, args: RunArgs) -> types.CallToolResult:
    return render.run_answer(await backend.run(args))


CALLS: dict[str, Call] = {
    SCRY_TOOL.name: _scry,
    DETAIL_TOOL.name: _detail,
    STATUS_TOOL.name: _status,
    LIST_TOOL.name: _names,
    HANDLE_TOOL.name: _handle,
    RUN_TOOL.name: _run,
}
assert set(CALLS) == {spec.name for spec in ALL_TOOLS}


def build_server(backend_for: BackendFor, tools: tuple[ToolSpec, ...]) -> Server[Any]:
    """An MCP server offering `tools`, each call made on `backend_for(ctx)`."""
    listed = types.ListToolsResult(tools=[spec.tool() for spec in tools])
    by_name = {spec.name: spec for spec in tools}

    async def list_tools(ctx: Context, params: types.PaginatedRequestParams | None) -> Any:
        return listed

    async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> Any:
        spec = by_name.get(params.name)
        if spec is None:
            # The name is not echoed: it is the caller's text, and this error may be logged.
            raise MCPError(code=types.INVALID_PARAMS, message=_unknown(params.name, by_name))
        try:
            args = spec.args.model_validate(params.arguments or {})
        except ValidationError as exc:
            return render.error(f"invalid arguments for {spec.name}: {describe(exc)}")
        try:
            return await CALLS[spec.name](backend_for(ctx), args)
        except ServiceError as exc:
            return render.error(exc.message)
        except ToolError as exc:
            return render.error(str(exc))
        except Exception:
            log.exception("tool failed", extra={"fields": {"tool": spec.name}})
            return render.error(f"{spec.name} failed (internal error; details are in the log)")

    return Server(
        "patina-serve",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def describe(exc: ValidationError) -> str:
    """Each problem as `field: message`, never the value given (it may be a secret typed
    by mistake)."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "arguments"
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)


def _unknown(name: str, offered: dict[str, ToolSpec]) -> str:
    listed = ", ".join(offered)
    if name == RUN_TOOL.name:
        return (
            "secrets_run is off: only `patina mcp` (stdio, beside the agent) offers it, "
            f"with the mcp.secrets_run setting on. Tools: {listed}"
        )
    return f"unknown tool; the tools are: {listed}"
