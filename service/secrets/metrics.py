"""Prometheus instruments of the secrets broker. Labels are outcomes and decisions only:
never a secret name, a principal or a value."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

PUSH_OUTCOMES = ("ok", "rejected", "cleared")
READ_DECISIONS = ("allow", "deny", "not_found", "invalid")


class SecretsMetrics:
    """secrets_loaded, secrets_push_total{outcome}, secrets_reads_total{decision},
    audit_dropped_total and policy_reloads_total{outcome}."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.loaded = Gauge("secrets_loaded", "Secrets held in memory.", registry=registry)
        self.pushes = Counter(
            "secrets_push", "Pushes to the admin API by outcome.", ["outcome"], registry=registry
        )
        self.reads = Counter(
            "secrets_reads", "Secret reads by policy decision.", ["decision"], registry=registry
        )
        self.audit_dropped = Counter(
            "audit_dropped", "Audit events dropped because the buffer was full.", registry=registry
        )
        self.policy_reloads = Counter(
            "secrets_policy_reloads",
            "Consumers-file reloads by outcome.",
            ["outcome"],
            registry=registry,
        )
        # Pre-create the label sets so dashboards see zeros rather than gaps.
        for outcome in PUSH_OUTCOMES:
            self.pushes.labels(outcome)
        # Kept: `.labels()` on every read is a measurable share of it (bench/core).
        self.read_decisions = {decision: self.reads.labels(decision) for decision in READ_DECISIONS}
        for outcome in ("ok", "invalid"):
            self.policy_reloads.labels(outcome)
