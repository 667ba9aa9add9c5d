"""Reading Prometheus text exposition in tests."""

from __future__ import annotations


def metric_total(metrics: str, prefix: str) -> float:
    """The sum of the samples whose line starts with `prefix` (a name, or a name plus the
    start of its labels)."""
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix)
    )
