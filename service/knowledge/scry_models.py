"""The scry request and answer as they travel: over HTTP (routes, the CLI, mother nodes)
and MCP. Pydantic models only, so a client can build and read them without
loading numpy or the model runtime.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.knowledge.model import DIMENSIONS

Mode = Literal["hybrid", "lexical", "semantic"]
Outcome = Literal["ok", "timeout", "error", "unauthorized"]
# The `federate` field of a scry request: true for every mother, or the names of some.
Federate = (
    bool | Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=64)]
)
# Base64 of DIMENSIONS float32 values.
_ENCODED_LENGTH = (DIMENSIONS * 4 + 2) // 3 * 4


class QueryVector(BaseModel):
    """The embedding of `query` by the model named in `model`."""

    model: str = Field(
        max_length=128, description="Model fingerprint: name/SHA-256 prefix/precision."
    )
    f32le: str = Field(
        max_length=_ENCODED_LENGTH,
        description=f"Base64 of {DIMENSIONS} little-endian float32 values.",
    )


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


class NodeStatus(BaseModel):
    """How one node answered a federated scry."""

    node: str = Field(description="`local` for this node, else the mother's name.")
    status: Outcome
    latency_ms: float = Field(description="Time to its answer, or to its deadline.")
    count: int = Field(0, description="Results it returned.")
    error: str | None = Field(None, description="Why it failed (never a secret).")


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
    symbols: list[str] = Field(
        default_factory=list, description="What the chunk defines (functions, classes, ...)."
    )
    node: str | None = Field(None, description="Federated scry: the node that found it.")


class ScryResponse(BaseModel):
    results: list[ScryResult]
    count: int
    mode: Mode
    nodes: list[NodeStatus] | None = Field(None, description="Federated scry: each node.")
    modes_available: list[Mode] | None = Field(
        None,
        description="This node's modes that answer over its whole index now: lexical as "
        "soon as files are indexed, hybrid and semantic once every chunk has its vector.",
    )
    semantic_coverage: float | None = Field(
        None,
        description="Share of this node's chunks that have a vector (1 when complete); "
        "below 1, hybrid ranks a chunk without one by BM25 alone.",
    )
