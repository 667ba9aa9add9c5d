"""The composition root: the one module that imports every domain, opens them on one exit
stack, wires their hooks together and hands out the frozen Resources.

Domains know nothing of each other's lifecycles or of Resources: each has an opener that
takes the narrow arguments it needs and is an async context manager. The runner and the
tests build their Resources here, the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from service.knowledge.scry import Scry
from service.knowledge.service import KnowledgeService, open_knowledge
from service.mcp.http import open_mcp_endpoint
from service.metrics import Metrics
from service.mother.federation import open_federation
from service.query_runner import QueryRunner
from service.resources import Resources
from service.secrets.broker import SecretsBroker, open_broker
from service.settings import Settings
from service.tokens import TokenStore

if TYPE_CHECKING:
    from service.knowledge.embedder import Embedder
    from service.transport.connection import ConnectionInfo


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    tokens: TokenStore | None = None,
    embedder: Embedder | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Resources]:
    """Open every enabled domain and yield the service's Resources; close them all on exit
    (in reverse order: the query runner's threads last).

    `tokens` are the bearer tokens TCP callers may present (none by default); `embedder` is
    an already loaded model to use instead of loading one (tests share one per session);
    `clock` (monotonic seconds) times the session cache and handle TTLs."""
    started_at = time.monotonic()
    metrics = Metrics()
    tokens = tokens or TokenStore()
    async with AsyncExitStack() as stack:
        queries = QueryRunner(
            slots=settings.max_concurrent_queries,
            default_timeout=settings.query_timeout_ms / 1000,
            on_reject=lambda reason: metrics.http.rejected.labels(reason).inc(),
        )
        stack.callback(queries.close)
        knowledge: KnowledgeService | None = None
        if settings.knowledge.enabled:
            knowledge = await stack.enter_async_context(
                open_knowledge(settings, registry=metrics.registry, embedder=embedder)
            )
        broker = await stack.enter_async_context(
            open_broker(settings, registry=metrics.registry, clock=clock)
        )
        federation = await stack.enter_async_context(
            open_federation(
                settings.mothers,
                queries=queries,
                max_limit=settings.max_limit,
                registry=metrics.registry,
            )
        )
        scry = Scry(
            knowledge=knowledge,
            federation=federation,
            queries=queries,
            max_limit=settings.max_limit,
            scrubber=broker.answers,
        )
        mcp = None
        if settings.mcp.http_enabled:
            mcp = await stack.enter_async_context(
                open_mcp_endpoint(
                    scry=scry, broker=broker, tokens=tokens, max_body=settings.max_body_bytes
                )
            )
        yield Resources(
            settings=settings,
            metrics=metrics,
            tokens=tokens,
            queries=queries,
            broker=broker,
            federation=federation,
            scry=scry,
            knowledge=knowledge,
            boot_id=uuid.uuid4().hex,
            started_at=started_at,
            peer_rejected_hooks=(_audit_refusals(broker),),
            sighup_hooks=(broker.reload_policy,),
            mcp=mcp,
        )


def _audit_refusals(broker: SecretsBroker) -> Callable[[ConnectionInfo, str], None]:
    """A listener's refusal of a socket peer, as an audit event of the broker."""

    def refused(conn: ConnectionInfo, listener: str) -> None:
        if conn.peer is not None:
            peer = conn.peer
            broker.peer_rejected(listener, uid=peer.uid, gid=peer.gid, pid=peer.pid)

    return refused
