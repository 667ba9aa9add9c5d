"""Knowledge routes: `POST /api/scry` (Patina-compatible), `POST /api/index`,
`GET /api/index/status`.

Indexing needs the `index` scope, which public-socket peers (the machine's owner) hold and
TCP tokens hold only when granted; the admin socket's `admin` scope is for the secrets
sidecar and deliberately does not include it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from service.auth import ResourcesDep, require_scope
from service.errors import NotFound, error_responses
from service.knowledge.indexer import IndexReport
from service.knowledge.query_vector import QueryVector, decode, encode
from service.knowledge.search import Mode, Query
from service.knowledge.service import IndexRun, IndexState, KnowledgeService
from service.mother.deps import HopsDep
from service.mother.federation import Federate, NodeStatus
from service.mother.hops import may_federate
from service.principal import SCOPE_INDEX, SCOPE_SCRY, Principal
from service.resources import Resources

router = APIRouter(tags=["knowledge"])

ScryCaller = Annotated[Principal, Depends(require_scope(SCOPE_SCRY))]
IndexCaller = Annotated[Principal, Depends(require_scope(SCOPE_INDEX))]


def knowledge_of(resources: Resources) -> KnowledgeService:
    service = resources.knowledge
    if service is None:
        raise NotFound("knowledge search is disabled on this service")
    return service


class ScryRequest(BaseModel):
    """A Patina `scry` request plus this service's `mode`, `kind` and `path_prefix`."""

    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, max_length=8192, description="Words or an identifier.")
    limit: int = Field(10, ge=0, description="Results wanted; clamped to the server's maximum.")
    min_score: float | None = Field(None, description="Drop results scoring below this.")
    repo: str | None = Field(None, description="Only this repository (index name).")
    all_repos: bool = Field(False, description="Search every repository (ignores `repo`).")
    hybrid: bool | None = Field(
        None, description="Patina: false asks for semantic search only; default hybrid."
    )
    mode: Mode | None = Field(None, description="hybrid (default), lexical or semantic.")
    kind: str | None = Field(None, description="markdown, code, text or commit.")
    path_prefix: str | None = Field(None, max_length=4096, description="Paths starting so.")
    dimension: str | None = Field(None, description="Patina: accepted, not used.")
    include_issues: bool = Field(False, description="Patina: accepted, not used.")
    include_persona: bool = Field(False, description="Patina: accepted, not used.")
    federate: Federate = Field(
        False, description="Also ask the mother nodes: true for all, or a list of names."
    )
    query_vector: QueryVector | None = Field(
        None,
        description="The embedding of `query`, when the caller has it (a federating node "
        "sends it so every node embeds the query once); ignored if its model differs.",
    )

    @property
    def resolved_mode(self) -> Mode:
        """`mode` if given, else Patina's rule: `hybrid: false` means semantic."""
        return self.mode or ("semantic" if self.hybrid is False else "hybrid")

    def to_query(self, *, max_limit: int) -> Query:
        return Query(
            text=self.query,
            mode=self.resolved_mode,
            limit=min(self.limit, max_limit),
            min_score=self.min_score,
            repo=None if self.all_repos else self.repo,
            kind=self.kind,
            path_prefix=self.path_prefix or None,
        )


class ScryResult(BaseModel):
    """One found chunk: Patina's fields first, then where it is and who found it."""

    id: int
    content: str
    score: float
    event_type: str
    source_id: str
    timestamp: str
    repo: str
    path: str
    start_line: int
    end_line: int
    kind: str
    modes: list[str] = Field(description="Which searches found it: lexical, semantic.")
    node: str | None = Field(None, description="Federated scry: the node that found it.")


class ScryResponse(BaseModel):
    results: list[ScryResult]
    count: int
    mode: Mode
    nodes: list[NodeStatus] | None = Field(None, description="Federated scry: each node.")


@router.post(
    "/api/scry",
    operation_id="scry",
    responses=error_responses(400, 401, 403, 404, 422, 503, 504),
    response_model_exclude_none=True,
)
async def scry(
    body: ScryRequest, caller: ScryCaller, resources: ResourcesDep, hops: HopsDep
) -> ScryResponse:
    """Search the index: lexical BM25, semantic cosine, or both fused (default).

    `limit` is clamped to the server's maximum (1000). The query runs under the
    concurrency gate (503 when full) and a deadline (504, and the query is stopped).
    With `federate` the mother nodes are asked too (see docs/mother.md)."""
    if body.federate and may_federate(hops):
        body = await _with_query_vector(body, resources)
        local_body = body.model_copy(update={"federate": False})
        answer = await resources.federation.scry(
            federate=body.federate,
            hops=hops,
            payload=body.model_dump(mode="json", exclude_none=True),
            local=(lambda: scry(local_body, caller, resources, hops))
            if resources.knowledge
            else None,
        )
        return ScryResponse.model_validate(answer)
    knowledge = knowledge_of(resources)
    query = body.to_query(max_limit=resources.settings.max_limit)
    if body.query_vector is not None and query.mode != "lexical":
        vector = decode(body.query_vector, model=knowledge.model_fingerprint)
        query = dataclasses.replace(query, vector=vector)
    hits = await resources.queries.run(lambda cancel: knowledge.scry(query, cancel))
    results = [
        ScryResult(
            id=h.chunk.id,
            content=h.chunk.content,
            score=round(h.score, 6),
            event_type=h.chunk.event_type,
            source_id=h.chunk.source_id,
            timestamp=h.chunk.timestamp,
            repo=h.chunk.repo,
            path=h.chunk.path,
            start_line=h.chunk.start_line,
            end_line=h.chunk.end_line,
            kind=h.chunk.kind,
            modes=list(h.modes),
        )
        for h in hits
    ]
    return ScryResponse(results=results, count=len(results), mode=query.mode)


async def _with_query_vector(body: ScryRequest, resources: Resources) -> ScryRequest:
    """The request with its query's embedding, computed once here for every node that
    takes part (they would otherwise each embed the same text on their own CPU)."""
    knowledge = resources.knowledge
    if knowledge is None or body.resolved_mode == "lexical" or body.query_vector is not None:
        return body
    vector = await resources.queries.run(lambda cancel: knowledge.embed_query(body.query, cancel))
    sent = encode(vector, model=knowledge.model_fingerprint)
    return body.model_copy(update={"query_vector": sent})


class IndexRequest(BaseModel):
    """Which directories to index; all configured roots when `paths` is empty."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        default_factory=list, max_length=64, description="Absolute paths inside the roots."
    )
    repo: str | None = Field(None, max_length=200, description="Repository name (root's).")
    git: bool = Field(False, description="Also index commit messages and changed files.")
    wait: bool = Field(False, description="Answer when the run has finished (200).")


class IndexRunReport(BaseModel):
    repo: str
    root: str
    files_seen: int
    files_indexed: int
    files_unchanged: int
    files_skipped: int
    files_deleted: int
    chunks_written: int
    chunks_embedded: int
    commits_indexed: int
    seconds: float
    notes: list[str]


class IndexStatus(BaseModel):
    """The current or last indexing run, and the size of the loaded index."""

    run_id: int
    state: IndexState
    paths: list[str]
    started_at: float | None
    finished_at: float | None
    reports: list[IndexRunReport]
    error: str | None
    generation: int
    chunks: int


def _status(knowledge: KnowledgeService, run: IndexRun) -> IndexStatus:
    return IndexStatus(
        run_id=run.run_id,
        state=run.state,
        paths=run.paths,
        started_at=run.started_at,
        finished_at=run.finished_at,
        reports=[IndexRunReport(**_report(r)) for r in run.reports],
        error=run.error,
        generation=knowledge.generation,
        chunks=knowledge.chunk_count,
    )


def _report(report: IndexReport) -> dict[str, Any]:
    return dict(report.__dict__)


@router.post(
    "/api/index",
    operation_id="index",
    status_code=202,
    responses={200: {"model": IndexStatus}, **error_responses(400, 401, 403, 404, 409, 422)},
)
async def index(
    body: IndexRequest, caller: IndexCaller, resources: ResourcesDep, response: Response
) -> IndexStatus:
    """Index configured roots (or directories inside them) on the service's own thread.

    Paths are resolved before the check, so a path or symlink leading out of the
    configured roots is refused (403). One run at a time (409). Answers 202 at once, or
    200 when the run has finished if `wait` is true."""
    knowledge = knowledge_of(resources)
    targets = knowledge.allowed_paths(body.paths)
    done = knowledge.start_index(targets, repo=body.repo, git=body.git)
    if not body.wait:
        return _status(knowledge, knowledge.status())
    run = await asyncio.shield(done)
    response.status_code = 200
    return _status(knowledge, run)


@router.get(
    "/api/index/status",
    operation_id="index_status",
    responses=error_responses(401, 403, 404),
)
async def index_status(caller: IndexCaller, resources: ResourcesDep) -> IndexStatus:
    """The current or last indexing run started through the service."""
    knowledge = knowledge_of(resources)
    return _status(knowledge, knowledge.status())
