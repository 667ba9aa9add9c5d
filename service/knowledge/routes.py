"""Knowledge routes: `POST /api/scry` (Patina-compatible), `POST /api/index`,
`GET /api/index/status`.

Indexing needs the `index` scope, which public-socket peers (the machine's owner) hold and
TCP tokens hold only when granted; the admin socket's `admin` scope is for the secrets
sidecar and deliberately does not include it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from service.auth import require_scope, resources_of
from service.errors import NotFound, error_responses
from service.http.routers import api_router
from service.knowledge.indexer import IndexReport
from service.knowledge.scry import Scry
from service.knowledge.scry_models import Mode, ScryRequest, ScryResponse
from service.knowledge.service import IndexPhase, IndexRun, IndexState, KnowledgeService
from service.mother.deps import HopsDep
from service.principal import SCOPE_INDEX, SCOPE_SCRY, Principal

router = api_router(tags=["knowledge"])

ScryCaller = Annotated[Principal, Depends(require_scope(SCOPE_SCRY))]
IndexCaller = Annotated[Principal, Depends(require_scope(SCOPE_INDEX))]


async def get_scry(request: Request) -> Scry:
    """The service's scry entry point."""
    return resources_of(request).scry


async def get_knowledge(request: Request) -> KnowledgeService:
    """The service's index; 404 when knowledge is disabled on this node."""
    knowledge = resources_of(request).knowledge
    if knowledge is None:
        raise NotFound("knowledge search is disabled on this service")
    return knowledge


ScryDep = Annotated[Scry, Depends(get_scry)]
KnowledgeDep = Annotated[KnowledgeService, Depends(get_knowledge)]


@router.post(
    "/api/scry",
    operation_id="scry",
    responses=error_responses(400, 401, 403, 404, 422, 503, 504),
    response_model_exclude_none=True,
)
async def scry(
    body: ScryRequest, caller: ScryCaller, search: ScryDep, hops: HopsDep
) -> ScryResponse:
    """Search the index: lexical BM25, semantic cosine, or both fused (default).

    `limit` is clamped to the server's maximum (1000). The query runs under the
    concurrency gate (503 when full) and a deadline (504, and the query is stopped).
    With `federate` the mother nodes are asked too (see docs/mother.md). No result carries
    a value the secrets broker holds: it is replaced by `${secret:NAME}` when the caller
    may read NAME, else by `[REDACTED]`."""
    return await search.answer(body, caller=caller, hops=hops)


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
    lexical_seconds: float = Field(
        0.0, description="Seconds until the chunks were committed (lexical search ready)."
    )
    chunks_unembedded: int = Field(
        0, description="Chunks left without a vector at the end (the background pass's)."
    )
    notes: list[str]
    secret_files: list[str] = Field(
        default_factory=list,
        description="Files left out as secret-bearing (paths only; `dir/` for the "
        "service's own directories); see knowledge.secret_files_allow.",
    )


class BackgroundEmbedding(BaseModel):
    """The service's background embedding pass (chunks written without vectors)."""

    running: bool
    done: int = Field(description="Chunks embedded by the pass under way.")
    total: int = Field(description="Chunks it found without a vector.")


class IndexStatus(BaseModel):
    """The current or last indexing run, and how complete the loaded index is."""

    run_id: int
    state: IndexState
    paths: list[str]
    started_at: float | None
    finished_at: float | None
    reports: list[IndexRunReport]
    error: str | None
    generation: int
    chunks: int = Field(description="Chunks with a vector in the loaded index.")
    phase: IndexPhase | None = Field(
        None, description="While running: files, commits, then vectors."
    )
    done: int = Field(0, description="While running: items of the phase done.")
    total: int = Field(0, description="While running: items of the phase.")
    chunks_total: int = Field(0, description="Chunks in the loaded index, embedded or not.")
    semantic_coverage: float = Field(
        1.0, description="Share of the chunks that have a vector (1 when complete)."
    )
    modes_available: list[Mode] = Field(
        default_factory=list, description="Modes that answer over the whole index now."
    )
    background_embedding: BackgroundEmbedding | None = None


def _status(knowledge: KnowledgeService, run: IndexRun) -> IndexStatus:
    readiness = knowledge.readiness()
    embedding = knowledge.embedding
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
        phase=run.phase,
        done=run.done,
        total=run.total,
        chunks_total=knowledge.chunks_total,
        semantic_coverage=readiness.semantic_coverage,
        modes_available=list(readiness.modes_available),
        background_embedding=BackgroundEmbedding(
            running=embedding.running, done=embedding.done, total=embedding.total
        ),
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
    body: IndexRequest, caller: IndexCaller, knowledge: KnowledgeDep, response: Response
) -> IndexStatus:
    """Index configured roots (or directories inside them) on the service's own thread.

    Paths are resolved before the check, so a path or symlink leading out of the
    configured roots is refused (403). One run at a time (409). Answers 202 at once, or
    200 when the run has finished if `wait` is true."""
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
async def index_status(caller: IndexCaller, knowledge: KnowledgeDep) -> IndexStatus:
    """The current or last indexing run started through the service."""
    return _status(knowledge, knowledge.status())
