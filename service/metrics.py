"""Prometheus instruments, on a registry owned by each Resources (no global state).

Labels are low-cardinality by rule: route templates, methods, statuses, transports and
outcomes. Never a raw path, a query, a token or a secret name.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from service import NAME, __version__

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class HttpMetrics:
    """The instruments of the HTTP layer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered.",
            ["route", "method", "status", "transport"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from request start to response end.",
            ["route", "method", "transport"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "Requests being served.", ["transport"], registry=registry
        )
        self.rejected = Counter(
            "http_rejected",
            "Requests refused before reaching a handler.",
            ["reason"],
            registry=registry,
        )


class Metrics:
    """The registry plus the core instruments; domains add theirs to `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = HttpMetrics(self.registry)
        Info("patina_build", "Build information.", registry=self.registry).info(
            {"version": __version__, "name": NAME}
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
