"""Loop prevention: every federated request carries a hop count, and a node federates only
while the count is below MAX_HOPS.

The node a user asks is hop 0; it sends `X-Patina-Hops: 1` to its mothers, which then
answer from their own index even when they are configured to federate back (A -> B -> A
stops at B). A missing header is hop 0; a negative one counts as 0 (so it cannot buy extra
hops) and an unreadable one as the limit (so it federates nowhere).
"""

from __future__ import annotations

HOP_HEADER = "X-Patina-Hops"
MAX_HOPS = 1


def parse_hops(value: str | None) -> int:
    """Absent counts as 0, negative as 0, unreadable as the limit: a header buys no hops."""
    if value is None:
        return 0
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return MAX_HOPS


def may_federate(hops: int) -> bool:
    """Whether a request at `hops` may fan out to this node's mothers."""
    return hops < MAX_HOPS
