"""What every listener of one running service shares: settings, metrics, tokens, the query
runner and the opened domains. One instance per process (or per test), held on
`app.state.resources`.

It is a frozen value: `bootstrap.open_resources` opens every domain, wires the hooks and
builds it; nothing is added or swapped afterwards. uvicorn runs an app's lifespan on only
one of several servers, so it is opened by the runner (or a test), not in a lifespan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.types import ASGIApp

if TYPE_CHECKING:
    from service.knowledge.scry import Scry
    from service.knowledge.service import KnowledgeService
    from service.metrics import Metrics
    from service.mother.federation import Federation
    from service.query_runner import QueryRunner
    from service.secrets.broker import SecretsBroker
    from service.settings import Settings
    from service.tokens import TokenStore
    from service.transport.connection import ConnectionInfo

log = logging.getLogger("patina")

PeerRejectedHook = Callable[["ConnectionInfo", str], None]


@dataclass(frozen=True, eq=False)
class Resources:
    """Shared state of one running service; see bootstrap.open_resources."""

    settings: Settings
    metrics: Metrics
    tokens: TokenStore
    queries: QueryRunner
    broker: SecretsBroker
    federation: Federation
    scry: Scry
    knowledge: KnowledgeService | None
    boot_id: str
    started_at: float = field(default_factory=time.monotonic)
    # Called when a listener refuses a socket peer (the secrets audit log listens here).
    peer_rejected_hooks: tuple[PeerRejectedHook, ...] = ()
    # Called on SIGHUP (the secrets policy reloads here).
    sighup_hooks: tuple[Callable[[], None], ...] = ()
    # The MCP endpoint (`/mcp`) of the public app, when it is served.
    mcp: ASGIApp | None = None

    @property
    def uptime_secs(self) -> float:
        return time.monotonic() - self.started_at

    def peer_rejected(self, conn: ConnectionInfo, listener: str) -> None:
        for hook in self.peer_rejected_hooks:
            hook(conn, listener)

    def sighup(self) -> None:
        log.info("SIGHUP: reloading")
        for hook in self.sighup_hooks:
            hook()
