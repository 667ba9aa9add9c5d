"""One chunk by its id, whole, with its neighbours in the same file on request: what an agent
reads after a scry result caught its eye (`GET /api/chunks/{id}` and the MCP `scry_detail`
tool both call `chunk_detail`).

It runs like a scry: under the query runner's gate and deadline, on a connection of the
index's read pool, and its texts are scrubbed of the broker's values for the caller.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

from service.cancel import Cancel
from service.errors import NotFound
from service.knowledge.chunk_models import MAX_NEIGHBOURS, ChunkDetail, ChunkView
from service.knowledge.scry import Scry, model_texts, with_model_texts
from service.knowledge.store import ChunkRow, fetch_chunks
from service.principal import Principal


async def chunk_detail(
    scry: Scry, chunk_id: int, *, neighbours: int, caller: Principal
) -> ChunkDetail:
    """The chunk `chunk_id` of this node's index with up to `neighbours` (capped at
    MAX_NEIGHBOURS) chunks of its file on each side, scrubbed for `caller`.

    404 when this node has no index or no such chunk (a re-index gives chunks new ids),
    503 when the gate is full, 504 past the deadline."""
    knowledge = scry.knowledge
    if knowledge is None:
        raise NotFound("knowledge search is disabled on this service")
    wanted = max(0, min(neighbours, MAX_NEIGHBOURS))

    def read(cancel: Cancel) -> ChunkDetail | None:
        with knowledge.pool.borrow(cancel) as conn:
            return read_chunk(conn, chunk_id, neighbours=wanted)

    detail = await scry.queries.run(read)
    if detail is None:
        raise NotFound(f"no chunk {chunk_id} in the index (re-indexed since? scry again)")
    return scrub_detail(detail, scry, caller)


def read_chunk(conn: sqlite3.Connection, chunk_id: int, *, neighbours: int) -> ChunkDetail | None:
    """The chunk and its `neighbours` nearest chunks of the same document on each side,
    ordered by line; None when the chunk does not exist. Blocking."""
    row = conn.execute(
        "SELECT document_id, start_line FROM chunks WHERE id = ?", (chunk_id,)
    ).fetchone()
    if row is None:
        return None
    document_id, start_line = row
    position = (document_id, start_line, chunk_id, neighbours)
    before = _neighbours(conn, "<", "DESC", position)[::-1] if neighbours > 0 else []
    after = _neighbours(conn, ">", "ASC", position) if neighbours > 0 else []
    rows = fetch_chunks(conn, [chunk_id, *before, *after])
    if chunk_id not in rows:
        return None
    return ChunkDetail(
        chunk=_view(rows[chunk_id]),
        before=[_view(rows[i]) for i in before if i in rows],
        after=[_view(rows[i]) for i in after if i in rows],
    )


def _neighbours(
    conn: sqlite3.Connection,
    side: Literal["<", ">"],
    order: Literal["ASC", "DESC"],
    position: tuple[int, int, int, int],
) -> list[int]:
    """Ids of the nearest chunks of the same document on one `side` ("<" before, ">"
    after) of the chunk, nearest first. Ordered by (start_line, id): chunks of one file
    never share both. `side` and `order` are one of two constants each, never input."""
    return [
        found
        for (found,) in conn.execute(
            f"SELECT id FROM chunks WHERE document_id = ? AND (start_line, id) {side} (?, ?) "
            f"ORDER BY start_line {order}, id {order} LIMIT ?",
            position,
        )
    ]


def scrub_detail(detail: ChunkDetail, scry: Scry, caller: Principal) -> ChunkDetail:
    """`detail` with every text scrubbed of the broker's values for `caller` (the same
    placeholders as in a scry answer)."""
    views = [detail.chunk, *detail.before, *detail.after]
    texts = [text for view in views for text in model_texts(view)]
    scrubbed = scry.scrubber.scrub(texts, caller)
    if scrubbed is texts:
        return detail
    replacements = iter(scrubbed)
    clean = [with_model_texts(view, replacements) for view in views]
    count = len(detail.before)
    return ChunkDetail(chunk=clean[0], before=clean[1 : 1 + count], after=clean[1 + count :])


def _view(row: ChunkRow) -> ChunkView:
    return ChunkView(
        id=row.id,
        repo=row.repo,
        path=row.path,
        start_line=row.start_line,
        end_line=row.end_line,
        kind=row.kind,
        event_type=row.event_type,
        source_id=row.source_id,
        timestamp=row.timestamp,
        symbols=list(row.symbols),
        content=row.content,
    )
