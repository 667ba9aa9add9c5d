"""One chunk, whole, with its neighbours: the answer of `GET /api/chunks/{id}` and of the MCP
`scry_detail` tool. Pydantic models only, so a client reads them without loading the index
or the model runtime."""

from __future__ import annotations

from pydantic import BaseModel, Field

# Chunks of context on each side: beyond a few, reading the file itself is the better tool.
MAX_NEIGHBOURS = 5


class ChunkView(BaseModel):
    """One stored chunk, whole."""

    id: int
    repo: str
    path: str
    start_line: int
    end_line: int
    kind: str
    event_type: str
    source_id: str
    timestamp: str
    symbols: list[str] = Field(description="What the chunk defines (functions, classes, ...).")
    content: str


class ChunkDetail(BaseModel):
    """A chunk and, when asked for, the chunks just before and after it in its file."""

    chunk: ChunkView
    before: list[ChunkView] = Field(description="Preceding chunks of the same file, in order.")
    after: list[ChunkView] = Field(description="Following chunks of the same file, in order.")
