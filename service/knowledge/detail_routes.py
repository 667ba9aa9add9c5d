"""`GET /api/chunks/{chunk_id}`: one scry result's whole chunk, with its neighbours on
request (the `patina mcp` stdio server's `scry_detail` reads it here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from service.errors import error_responses
from service.http.routers import api_router
from service.knowledge.chunk_detail import chunk_detail
from service.knowledge.chunk_models import MAX_NEIGHBOURS, ChunkDetail
from service.knowledge.routes import ScryCaller, ScryDep

router = api_router(tags=["knowledge"])


@router.get(
    "/api/chunks/{chunk_id}",
    operation_id="chunk_detail",
    responses=error_responses(401, 403, 404, 422, 503, 504),
)
async def chunk_detail_route(
    chunk_id: Annotated[int, Path(ge=1, description="A scry result's `id`.")],
    caller: ScryCaller,
    search: ScryDep,
    neighbours: Annotated[
        int,
        Query(ge=0, le=MAX_NEIGHBOURS, description="Chunks of the same file on each side."),
    ] = 0,
) -> ChunkDetail:
    """The whole chunk a scry result points at, and up to `neighbours` chunks before and
    after it in the same file. 404 for an id the index no longer holds (a re-index gives
    chunks new ids). Runs under the query gate (503) and deadline (504); no text carries a
    value the secrets broker holds."""
    return await chunk_detail(search, chunk_id, neighbours=neighbours, caller=caller)
