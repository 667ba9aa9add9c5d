"""The request's federation hop count as a FastAPI dependency (kept apart from hops.py,
which the CLI imports without FastAPI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from service.mother.hops import HOP_HEADER, parse_hops


async def hops_of(
    x_patina_hops: Annotated[
        str | None,
        Header(
            alias=HOP_HEADER,
            description="Federation hops so far (set by federating nodes; 0 when absent).",
        ),
    ] = None,
) -> int:
    """The request's hop count (async: a plain def dependency costs a thread-pool hop)."""
    return parse_hops(x_patina_hops)


HopsDep = Annotated[int, Depends(hops_of)]
