"""Federated scry: ask the local index and the mother nodes at once, merge, label, report.

Each node gets its own deadline (its `timeout_ms`); a node that is dead, slow, silent or
refuses us costs at most that deadline and shows up in `nodes` with its status, while the
others' results still come back. The lists are merged with reciprocal rank fusion (each
node's rank, not its score, decides, since scores from different indexes do not compare);
a chunk found on several nodes (same repo, path, lines and content) is kept once, at its
best rank. Every result is labelled with the node that found it (`local` for this one).

The local query runs under the core's gate as any scry does; the fan-out to the nodes takes
one more slot (`QueryRunner.run_async`), so a full gate answers 503 rather than queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import ConfigDict, Field, ValidationError

from service.errors import BadRequest, DeadlineExceeded, ServiceError, StartupError
from service.http.wire import error_message
from service.knowledge.scry_models import NodeStatus, Outcome, ScryRequest, ScryResult
from service.mother.client import MotherClient, NodeFailure, describe_failure
from service.mother.config import LOCAL_NODE, MotherNode
from service.mother.metrics import MotherMetrics
from service.query_runner import QueryRunner

log = logging.getLogger("patina.mother")

RRF_K = 60
SCRY_PATH = "/api/scry"
# The whole fan-out has a backstop deadline just past the slowest node's own.
FANOUT_SLACK_SECS = 0.5

# This node's part of a federated scry: its results, best first.
LocalScry = Callable[[], Awaitable[list[ScryResult]]]


class RemoteResult(ScryResult):
    """A result from another node. Patina's fields are required; this service's extras
    default, so an original Patina daemon can be a mother too."""

    model_config = ConfigDict(extra="ignore")

    event_type: str = ""
    source_id: str = ""
    timestamp: str = ""
    repo: str = ""
    path: str = ""
    start_line: int = 0
    end_line: int = 0
    kind: str = ""
    modes: list[str] = Field(default_factory=list)


@dataclass
class NodeAnswer:
    status: NodeStatus
    results: list[ScryResult] = field(default_factory=list)


class Federation:
    """The pooled clients of every configured mother, and the fan-out over them."""

    def __init__(
        self,
        clients: list[MotherClient],
        *,
        queries: QueryRunner,
        max_limit: int,
        metrics: MotherMetrics,
    ) -> None:
        self.clients = {client.name: client for client in clients}
        self.queries = queries
        self.max_limit = max_limit
        self.metrics = metrics

    def select(self, federate: bool | list[str]) -> list[MotherClient]:
        """The nodes asked for: all of them for `true`, else those named (400 if unknown)."""
        if federate is True:
            return list(self.clients.values())
        if federate is False:
            return []
        unknown = [name for name in federate if name not in self.clients]
        if unknown:
            shown = ", ".join(name[:64] for name in unknown[:5])
            raise BadRequest(f"unknown mother node: {shown}")
        return [self.clients[name] for name in dict.fromkeys(federate)]

    async def scry(
        self, request: ScryRequest, *, hops: int, local: LocalScry | None
    ) -> tuple[list[ScryResult], list[NodeStatus]]:
        """Ask `local` (this node's search, None if it has no index) and the nodes that
        `request.federate` selects, concurrently; their merged results and each node's
        status."""
        nodes = self.select(request.federate)
        limit = min(request.limit, self.max_limit)
        forward = request.model_dump(mode="json", exclude_none=True, exclude={"federate"})
        forward["limit"] = limit
        if request.federate is True:
            # Names are this node's; `true` means the same everywhere. The hop count keeps
            # the next node from acting on it unless the hop limit allows.
            forward["federate"] = True
        local_task: asyncio.Task[NodeAnswer] | None = None
        remote_task: asyncio.Task[list[NodeAnswer]] | None = None
        try:
            async with asyncio.TaskGroup() as group:
                if local is not None:
                    local_task = group.create_task(self._local(local))
                if nodes:
                    remote_task = group.create_task(self._remote(nodes, forward, hops=hops + 1))
        except BaseExceptionGroup as failed:
            # Only the gate's 503 or a caller error escapes the per-node handling.
            raise _first_service_error(failed) from None
        answers: list[NodeAnswer] = []
        if local_task is not None:
            answers.append(local_task.result())
        if remote_task is not None:
            answers.extend(remote_task.result())
        merged = merge([(a.status.node, a.results) for a in answers], limit=limit)
        return merged, [a.status for a in answers]

    async def _local(self, local: LocalScry) -> NodeAnswer:
        started = time.perf_counter()
        try:
            results = await local()
        except DeadlineExceeded:
            return NodeAnswer(_status(LOCAL_NODE, "timeout", started, "deadline passed"))
        except ServiceError:
            raise
        except Exception:
            log.exception("local part of a federated scry failed")
            return NodeAnswer(_status(LOCAL_NODE, "error", started, "internal error"))
        return NodeAnswer(_status(LOCAL_NODE, "ok", started, count=len(results)), results)

    async def _remote(
        self, nodes: list[MotherClient], payload: dict[str, Any], *, hops: int
    ) -> list[NodeAnswer]:
        answers: dict[str, NodeAnswer] = {}

        async def ask(client: MotherClient) -> None:
            answers[client.name] = await self._ask(client, payload, hops=hops)

        async def ask_all() -> None:
            await asyncio.gather(*(ask(client) for client in nodes))

        started = time.perf_counter()
        backstop = max(client.node.timeout for client in nodes) + FANOUT_SLACK_SECS
        # The backstop is not reached while each node keeps its own deadline; if it is, the
        # nodes that had not answered are reported as timed out.
        with contextlib.suppress(DeadlineExceeded):
            await self.queries.run_async(ask_all, timeout=backstop)
        return [
            answers.get(c.name) or NodeAnswer(_status(c.name, "timeout", started, "no answer"))
            for c in nodes
        ]

    async def _ask(self, client: MotherClient, payload: dict[str, Any], *, hops: int) -> NodeAnswer:
        started = time.perf_counter()
        results: list[ScryResult] = []
        message: str | None = None
        outcome: Outcome
        try:
            # post_json keeps the node's deadline (its timeout_ms) itself.
            code, body = await client.post_json(SCRY_PATH, payload, hops=hops)
        except TimeoutError:
            outcome, message = "timeout", f"no answer within {client.node.timeout_ms} ms"
        except NodeFailure as exc:
            outcome, message = "error", describe_failure(exc)
        else:
            outcome, results, message = classify(code, body)
        status = _status(client.name, outcome, started, message, count=len(results))
        self.metrics.observe(client.name, outcome, status.latency_ms / 1000)
        if outcome != "ok":
            fields = {"node": client.name, "outcome": outcome, "latency_ms": status.latency_ms}
            log.warning("mother node failed", extra={"fields": fields | {"reason": message}})
        return NodeAnswer(status, results)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()


def classify(code: int, body: Any) -> tuple[Outcome, list[ScryResult], str | None]:
    """A node's HTTP answer as (outcome, results, reason)."""
    if code == 200:
        raw = body.get("results") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            return "error", [], "malformed answer: no results list"
        try:
            results: list[ScryResult] = [RemoteResult.model_validate(item) for item in raw]
        except ValidationError:
            return "error", [], "malformed answer: a result lacks Patina's fields"
        return "ok", results, None
    said = error_message(body)
    reason = f"HTTP {code}" + (f": {str(said)[:200]}" if said else "")
    if code in (401, 403):
        return "unauthorized", [], reason
    if code == 504:
        return "timeout", [], reason
    return "error", [], reason


def merge(lists: list[tuple[str, list[ScryResult]]], *, limit: int) -> list[ScryResult]:
    """Reciprocal rank fusion of each node's ranked results, each labelled with its node.

    A chunk held by several nodes (overlapping indexes, e.g. the same repository on a
    laptop and a mother) is kept once, at its best rank: its copies must not outvote the
    results only one node has. Ties go to the node's own score, then to the node's place
    in `lists` (local first), so equal inputs give equal outputs."""
    fused: dict[tuple[Any, ...], float] = {}
    best: dict[tuple[Any, ...], tuple[int, int, str, ScryResult]] = {}
    for place, (node, results) in enumerate(lists):
        for rank, result in enumerate(results, 1):
            key = _identity(node, result)
            fused[key] = max(fused.get(key, 0.0), 1.0 / (RRF_K + rank))
            if key not in best or (rank, place) < best[key][:2]:
                best[key] = (rank, place, node, result)
    order = sorted(fused, key=lambda key: (-fused[key], -best[key][3].score, best[key][1]))
    return [
        best[key][3].model_copy(update={"node": best[key][2]}) for key in order[: max(limit, 0)]
    ]


def _identity(node: str, result: ScryResult) -> tuple[Any, ...]:
    # The same chunk indexed on two machines: same place and same text. Without a path
    # (an original Patina daemon) a result is only ever itself.
    if result.path or result.source_id:
        return (
            result.repo,
            result.path or result.source_id,
            result.start_line,
            result.end_line,
            result.content,
        )
    return (node, result.id)


def _status(
    node: str, outcome: Outcome, started: float, error: str | None = None, *, count: int = 0
) -> NodeStatus:
    latency = round((time.perf_counter() - started) * 1000, 1)
    return NodeStatus(node=node, status=outcome, latency_ms=latency, count=count, error=error)


def _first_service_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_service_error(exc)
        if isinstance(exc, ServiceError):
            return exc
    return group.exceptions[0]


@asynccontextmanager
async def open_federation(
    nodes: list[MotherNode],
    *,
    queries: QueryRunner,
    max_limit: int,
    registry: CollectorRegistry,
) -> AsyncIterator[Federation]:
    """A pooled client per configured mother (token and key files read once), closed on
    exit. Bad files or duplicate names refuse the start."""
    names = [node.name for node in nodes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StartupError(f"mother names must be unique: {', '.join(duplicates)}")
    clients: list[MotherClient] = []
    try:
        for node in nodes:
            clients.append(MotherClient.open(node))
    except BaseException:
        for client in clients:
            await client.aclose()
        raise
    federation = Federation(
        clients, queries=queries, max_limit=max_limit, metrics=MotherMetrics(registry)
    )
    if clients:
        log.info("mother nodes", extra={"fields": {"nodes": ",".join(names)}})
    try:
        yield federation
    finally:
        await federation.aclose()
