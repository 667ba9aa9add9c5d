"""What the tools call: one interface, two implementations. Inside the service (`/mcp`)
the tools call the domain entry points directly for the request's caller (in_process.py);
the stdio server calls the running service's REST routes (remote.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from service.knowledge.chunk_models import ChunkDetail
from service.knowledge.scry_models import ScryRequest, ScryResponse
from service.mcp.catalogue import RunArgs
from service.secrets.handle_models import HandleInfo


class ToolError(Exception):
    """A tool call was refused or failed; the message is safe to show to the model (it
    names secrets, never holds a value)."""


@dataclass(frozen=True)
class RunOutcome:
    """How a secrets_run command ended, its output already scrubbed and capped."""

    exit_code: int | None  # None when it was stopped at its timeout
    stdout: bytes
    stderr: bytes
    timed_out: bool
    stdout_dropped: int  # bytes past the output cap
    stderr_dropped: int
    shown_as: list[str]  # the placeholders that stand for values in the output
    not_scrubbed: list[str]  # placeholders of values too short to be scrubbed (a warning)


class ToolBackend(Protocol):
    """The calls behind the tools, for one caller. Errors are ServiceError (in process) or
    ToolError (over HTTP), each with a message fit for the model."""

    async def scry(self, request: ScryRequest) -> ScryResponse: ...

    async def chunk(self, chunk_id: int, *, neighbours: int) -> ChunkDetail: ...

    async def index_status(self) -> dict[str, Any]: ...

    async def secret_names(self) -> list[str]: ...

    async def mint_handle(self, name: str, *, ttl_secs: int | None, uses: int | None) -> HandleInfo:
        """A handle for `name`, bound to the caller."""
        ...

    async def run(self, args: RunArgs) -> RunOutcome:
        """Run a command with secrets injected (only where secrets_run is offered)."""
        ...
