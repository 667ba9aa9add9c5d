"""The tools' calls inside the service (`/mcp`): the same domain entry points and route
adapters the REST routes call, for the request's caller, with the same scope checks (the
REST routes make them in their dependencies; here they are made before each call)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.errors import Forbidden, NotFound
from service.knowledge import routes as knowledge_routes
from service.knowledge.chunk_detail import chunk_detail
from service.knowledge.chunk_models import ChunkDetail
from service.knowledge.scry import Scry
from service.knowledge.scry_models import ScryRequest, ScryResponse
from service.mcp.backend import RunOutcome, ToolError
from service.mcp.catalogue import RunArgs
from service.principal import SCOPE_INDEX, SCOPE_SCRY, SCOPE_SECRETS, Principal
from service.secrets import handles_routes
from service.secrets import routes as secrets_routes
from service.secrets.broker import SecretsBroker
from service.secrets.deps import SecretsCall
from service.secrets.handle_models import HandleInfo, MintRequest


@dataclass(frozen=True)
class InProcessTools:
    """The tool backend for one caller of `/mcp`."""

    caller: Principal
    scry_entry: Scry
    broker: SecretsBroker

    def _require(self, scope: str) -> None:
        if not self.caller.has(scope):
            raise Forbidden(f"caller lacks the '{scope}' scope")

    async def scry(self, request: ScryRequest) -> ScryResponse:
        self._require(SCOPE_SCRY)
        return await self.scry_entry.answer(request, caller=self.caller)

    async def chunk(self, chunk_id: int, *, neighbours: int) -> ChunkDetail:
        self._require(SCOPE_SCRY)
        return await chunk_detail(
            self.scry_entry, chunk_id, neighbours=neighbours, caller=self.caller
        )

    async def index_status(self) -> dict[str, Any]:
        self._require(SCOPE_INDEX)
        knowledge = self.scry_entry.knowledge
        if knowledge is None:
            raise NotFound("knowledge search is disabled on this service")
        status = await knowledge_routes.index_status(self.caller, knowledge)
        return status.model_dump(mode="json")

    async def secret_names(self) -> list[str]:
        self._require(SCOPE_SECRETS)
        answer = await secrets_routes.list_secrets(self._secrets_call())
        return answer.names

    async def mint_handle(self, name: str, *, ttl_secs: int | None, uses: int | None) -> HandleInfo:
        self._require(SCOPE_SECRETS)
        body = MintRequest(name=name, ttl_secs=ttl_secs, uses=uses)
        return await handles_routes.mint_handle(body, self._secrets_call())

    async def run(self, args: RunArgs) -> RunOutcome:
        # Never offered here (tools.build_server is given the catalogue without it): a
        # command run by the service would run as the service, beside every secret it holds.
        raise ToolError("secrets_run runs beside the agent (`patina mcp`), not in the service")

    def _secrets_call(self) -> SecretsCall:
        return SecretsCall(self.caller, self.broker)
