"""Prometheus instruments of federation (labels: configured node names and outcomes only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from service.metrics import LATENCY_BUCKETS

OUTCOMES = ("ok", "timeout", "error", "unauthorized")


class MotherMetrics:
    """Requests to each mother node by outcome, and their latency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "mother_requests",
            "Federated scry requests sent to a mother node, by outcome.",
            ["node", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "mother_request_duration_seconds",
            "Time from sending a federated scry to a node to its answer (or deadline).",
            ["node"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, node: str, outcome: str, seconds: float) -> None:
        self.requests.labels(node, outcome).inc()
        self.duration.labels(node).observe(seconds)
