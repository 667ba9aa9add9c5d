"""Everything the listeners share: settings, metrics, the execution gate, tokens, and the
domain services. One instance per process (or per test), held on `app.state.resources`.

uvicorn runs an app's lifespan on only one of several servers, so shared resources are
opened here, by the runner (or a test fixture), and not in a lifespan.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from service.metrics import Metrics
from service.query_runner import QueryRunner
from service.settings import Settings
from service.tokens import TokenStore

if TYPE_CHECKING:
    from service.knowledge.service import KnowledgeService
    from service.mother.federation import Federation
    from service.secrets.broker import SecretsBroker
    from service.transport.connection import ConnectionInfo

log = logging.getLogger("patina")

PeerRejectedHook = Callable[["ConnectionInfo", str], None]


class Resources:
    """Shared state of one running service."""

    def __init__(self, settings: Settings, *, tokens: TokenStore | None = None) -> None:
        self.settings = settings
        self.started_at = time.monotonic()
        self.boot_id = uuid.uuid4().hex
        self.metrics = Metrics()
        self.tokens = tokens or TokenStore()
        self.queries = QueryRunner(
            slots=settings.max_concurrent_queries,
            default_timeout=settings.query_timeout_ms / 1000,
            on_reject=lambda reason: self.metrics.http.rejected.labels(reason).inc(),
        )
        # Called when a socket peer is refused (the secrets audit log listens here).
        self.peer_rejected_hooks: list[PeerRejectedHook] = []
        self.knowledge: KnowledgeService | None = None  # opened by _open_domains
        self.secrets: SecretsBroker | None = None  # opened by _open_domains
        self.mothers: Federation | None = None  # federated scry clients, by _open_domains
        # Called on SIGHUP (the secrets policy reloads here).
        self.sighup_hooks: list[Callable[[], None]] = []
        self.exit_stack = AsyncExitStack()

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

    async def close(self) -> None:
        await self.exit_stack.aclose()
        self.queries.close()


@asynccontextmanager
async def open_resources(
    settings: Settings, *, tokens: TokenStore | None = None
) -> AsyncIterator[Resources]:
    """Open the shared resources and every enabled domain; close them all on exit."""
    resources = Resources(settings, tokens=tokens)
    try:
        await _open_domains(resources)
        yield resources
    finally:
        await resources.close()


async def _open_domains(resources: Resources) -> None:
    # Each domain registers its own cleanup on resources.exit_stack.
    if resources.settings.knowledge.enabled:
        from service.knowledge.service import open_knowledge

        resources.knowledge = await open_knowledge(resources)
    from service.secrets.broker import open_broker

    resources.secrets = await open_broker(resources.settings, resources.metrics.registry)
    resources.exit_stack.push_async_callback(resources.secrets.close)
    broker = resources.secrets

    def audit_refusal(conn: ConnectionInfo, listener: str) -> None:
        if conn.peer is not None:
            peer = conn.peer
            broker.peer_rejected(listener, uid=peer.uid, gid=peer.gid, pid=peer.pid)

    resources.peer_rejected_hooks.append(audit_refusal)
    resources.sighup_hooks.append(resources.secrets.reload_policy)
    from service.mother.federation import open_federation

    resources.mothers = await open_federation(resources)
