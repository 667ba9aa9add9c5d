"""The tools' calls from `patina mcp` (stdio): the running service's REST routes, over its
Unix socket or TLS, through the project's HTTP client (which checks the socket's peer uid
before sending anything). This process holds no index and no secret: secrets_run is the
one call that handles values, and only for the command it runs (run_tool.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, ValidationError

from service.client import Target, open_client, response_error
from service.knowledge.chunk_models import ChunkDetail
from service.knowledge.scry_models import ScryRequest, ScryResponse
from service.mcp.backend import RunOutcome, ToolError
from service.mcp.catalogue import RunArgs
from service.mcp.config import McpSettings
from service.secrets.handle_models import HandleInfo, MintRequest
from service.socket_peer import WrongPeer

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class RemoteTools:
    """The tool backend of the stdio server: one HTTP client to one service, shared by
    every call (each runs on a worker thread; httpx's client is thread-safe)."""

    def __init__(self, target: Target, settings: McpSettings, *, timeout: float = 60.0) -> None:
        self.target = target
        self.settings = settings
        self.client = open_client(target, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    async def scry(self, request: ScryRequest) -> ScryResponse:
        body = request.model_dump(mode="json", exclude_none=True)
        return await self._call(ScryResponse, "POST", "/api/scry", json=body)

    async def chunk(self, chunk_id: int, *, neighbours: int) -> ChunkDetail:
        params = {"neighbours": neighbours}
        return await self._call(ChunkDetail, "GET", f"/api/chunks/{chunk_id}", params=params)

    async def index_status(self) -> dict[str, Any]:
        answer = await self._request("GET", "/api/index/status")
        status = answer.json()
        if not isinstance(status, dict):
            raise ToolError("the service answered the index status with something else")
        return status

    async def secret_names(self) -> list[str]:
        answer = await self._request("GET", "/secrets")
        names = answer.json().get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ToolError("the service answered the secret names with something else")
        return names

    async def mint_handle(self, name: str, *, ttl_secs: int | None, uses: int | None) -> HandleInfo:
        body = MintRequest(name=name, ttl_secs=ttl_secs, uses=uses)
        payload = body.model_dump(mode="json", exclude_none=True)
        return await self._call(HandleInfo, "POST", "/secrets/handles", json=payload)

    async def run(self, args: RunArgs) -> RunOutcome:
        # Imported here: only a server that offers secrets_run needs the runner.
        from service.mcp.run_tool import run_command

        return await anyio.to_thread.run_sync(
            lambda: run_command(args, self.client, self.settings, where=self.target.describe())
        )

    async def _call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        response = await self._request(method, path, **kwargs)
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise ToolError(f"the service's answer to {path} did not fit its contract") from None

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        def send() -> httpx.Response:
            return self.client.request(method, path, **kwargs)

        response = await _blocking(send, self.target)
        if response.status_code >= 400:
            # The service's error body: scrubbed there, never a value.
            raise ToolError(f"{response_error(response)} (HTTP {response.status_code})")
        return response


async def _blocking(call: Callable[[], T], target: Target) -> T:
    """`call` on a worker thread; a service that cannot be reached is a ToolError that says
    where it was looked for and how to start it."""
    try:
        return await anyio.to_thread.run_sync(call)
    except WrongPeer as exc:
        raise ToolError(str(exc)) from None
    except httpx.TimeoutException:
        raise ToolError(f"the service at {target.describe()} did not answer in time") from None
    except (httpx.TransportError, OSError) as exc:
        reason = type(exc).__name__
        raise ToolError(
            f"the service is not reachable at {target.describe()} ({reason}): is `patina "
            "serve` running?"
        ) from None
