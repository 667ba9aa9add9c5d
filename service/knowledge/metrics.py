"""Prometheus instruments of the knowledge domain (labels: mode, outcome; never a query)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.metrics import LATENCY_BUCKETS


class KnowledgeMetrics:
    """scry and embedding latency, index size, indexing runs and failures."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.scry_duration = Histogram(
            "scry_duration_seconds",
            "Time to answer a scry query, by mode (completed queries only).",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.scry_outcomes = Counter(
            "scry_queries",
            "scry queries by mode and outcome (ok, cancelled, error).",
            ["mode", "outcome"],
            registry=registry,
        )
        self.embed_duration = Histogram(
            "embed_duration_seconds",
            "Time to embed one batch of texts (a query or an indexing group).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.documents = Gauge(
            "knowledge_documents", "Documents in the loaded index.", registry=registry
        )
        self.chunks = Gauge("knowledge_chunks", "Chunks in the loaded index.", registry=registry)
        self.unembedded = Gauge(
            "knowledge_chunks_unembedded",
            "Chunks searchable by BM25 that have no vector yet (the embedding pass is behind).",
            registry=registry,
        )
        self.semantic_coverage = Gauge(
            "knowledge_semantic_coverage",
            "Share of the loaded index's chunks that have a vector (1 when complete).",
            registry=registry,
        )
        self.vectors_embedded = Counter(
            "knowledge_vectors_embedded",
            "Chunks given a vector by this service's embedding pass.",
            registry=registry,
        )
        self.index_runs = Counter(
            "index_runs", "Indexing runs started by the service.", registry=registry
        )
        self.index_failures = Counter(
            "index_failures", "Indexing runs that failed.", registry=registry
        )
