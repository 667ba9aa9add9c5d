"""The secrets broker: store + policy + audit + session cache behind one small API.

Routes and the opaque-handle layer call only this class. Every read decision and every
change of the set is audited (names, principals and outcomes; never a value) and counted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from service.errors import BadRequest, Forbidden, NotFound, StartupError
from service.principal import Principal
from service.secrets.audit import AuditLog
from service.secrets.cache import SessionCache
from service.secrets.hardening import disable_core_dumps
from service.secrets.metrics import SecretsMetrics
from service.secrets.policy import VERB_CACHE, VERB_LIST, PolicyError
from service.secrets.policy_watch import PolicyHolder
from service.secrets.store import SecretStore, Snapshot, valid_name
from service.settings import Settings

if TYPE_CHECKING:
    from service.transport.connection import ConnectionInfo

log = logging.getLogger("patina.secrets")

NAME_RULE = "names must match ^[A-Za-z0-9_]{1,128}$"


@dataclass(frozen=True)
class BrokerStatus:
    """What the admin status route reports about the set (no names, no values)."""

    generation: int
    loaded_at: str | None
    count: int


def iso_time(epoch: float) -> str | None:
    if epoch <= 0:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _who(principal: Principal | None) -> dict[str, Any]:
    if principal is None:
        return {"principal": "internal"}
    out: dict[str, Any] = {"principal": principal.name, "transport": principal.transport}
    if principal.uid is not None:
        out["uid"] = principal.uid
    if principal.pid is not None:
        out["pid"] = principal.pid
    return out


def _micros(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)


class SecretsBroker:
    """One per service, at `resources.secrets`."""

    def __init__(
        self, settings: Settings, *, registry: CollectorRegistry, owner_uid: int | None = None
    ) -> None:
        config = settings.secrets
        self.config = config
        self.metrics = SecretsMetrics(registry)
        self.store = SecretStore()
        audit_path = config.audit_file or settings.resolved_data_dir / "audit.jsonl"
        self.audit = AuditLog(
            audit_path,
            buffer_events=config.audit_buffer_events,
            on_drop=self.metrics.audit_dropped.inc,
        )
        self.policy = PolicyHolder(
            config.consumers_file,
            owner_uid=os.getuid() if owner_uid is None else owner_uid,
            on_reload=self._policy_reloaded,
        )
        self.cache = SessionCache(max_ttl_secs=config.cache_max_ttl_secs)

    def __repr__(self) -> str:
        return f"SecretsBroker({self.store!r}, {self.audit!r})"

    # Lifecycle.

    async def start(self) -> None:
        """Harden the process, start the audit writer, policy watcher and cache purger."""
        if self.config.disable_core_dumps:
            disable_core_dumps()
        self.audit.start()
        self.policy.start(poll_secs=self.config.policy_poll_secs)
        self.cache.start(purge_secs=self.config.cache_purge_secs)

    async def close(self) -> None:
        """Wipe every value (store and cache), stop the tasks, flush the audit log."""
        await self.policy.stop()
        await self.cache.stop()
        self.store.close()
        self.metrics.loaded.set(0)
        self.audit.close()

    # Reads (the issue-5 handle layer builds on these three).

    def names_for(self, principal: Principal) -> list[str]:
        """The names `principal` may read, sorted; never values. Audited as `list`."""
        started = time.perf_counter()
        names = self.policy.current.readable(principal, self.store.current.names())
        allowed = self.policy.current.may(principal, VERB_LIST)
        self.audit.record(
            "list",
            **_who(principal),
            outcome="allow" if allowed else "deny",
            count=len(names),
            latency_us=_micros(started),
        )
        return names

    def may_read(self, principal: Principal, name: str) -> bool:
        """Policy check only (no audit, no existence check)."""
        return valid_name(name) and self.policy.current.may_read(principal, name)

    def read(self, principal: Principal, name: str, *, via: str = "api") -> bytes:
        """The value of `name` for `principal`, audited. Raises BadRequest for an invalid
        name, Forbidden when not allowlisted (checked before existence, so a caller cannot
        probe which names exist), NotFound when absent."""
        started = time.perf_counter()
        if not valid_name(name):
            self._read_outcome(principal, None, "invalid", started, via)
            raise BadRequest(f"invalid secret name: {NAME_RULE}")
        if not self.policy.current.may_read(principal, name):
            self._read_outcome(principal, name, "deny", started, via)
            raise Forbidden(f"secret {name} is not in the caller's allowlist")
        with self.store.reading() as snapshot:
            value = snapshot.get(name)
            generation = snapshot.generation
        if value is None:
            self._read_outcome(principal, name, "not_found", started, via)
            raise NotFound(f"secret {name} is not loaded")
        self._read_outcome(principal, name, "allow", started, via, generation=generation)
        return value

    def _read_outcome(
        self,
        principal: Principal,
        name: str | None,
        decision: str,
        started: float,
        via: str,
        *,
        generation: int | None = None,
    ) -> None:
        self.metrics.reads.labels(decision).inc()
        fields: dict[str, Any] = {"name": name, "outcome": decision, "via": via}
        if generation is not None:
            fields["generation"] = generation
        self.audit.record("read", **_who(principal), **fields, latency_us=_micros(started))

    # Changes of the set (admin socket).

    def replace(
        self, mapping: Mapping[str, str | bytes], *, principal: Principal | None = None
    ) -> Snapshot:
        """Atomically replace the whole set. Names must be valid (BadRequest otherwise)."""
        started = time.perf_counter()
        for index, name in enumerate(mapping):
            if not valid_name(name):
                self.reject_push(f"secret #{index + 1} has an invalid name", principal=principal)
                raise BadRequest(f"secret #{index + 1}: {NAME_RULE}")
        snapshot = self.store.replace(mapping)
        self.metrics.pushes.labels("ok").inc()
        self.metrics.loaded.set(len(snapshot))
        self.audit.record(
            "push",
            **_who(principal),
            outcome="ok",
            generation=snapshot.generation,
            count=len(snapshot),
            latency_us=_micros(started),
        )
        log.info(
            "secrets replaced",
            extra={"fields": {"generation": snapshot.generation, "count": len(snapshot)}},
        )
        return snapshot

    def reject_push(self, reason: str, *, principal: Principal | None = None) -> None:
        """Count and audit a refused push; the live set is untouched. `reason` must not
        quote the body."""
        self.metrics.pushes.labels("rejected").inc()
        self.audit.record(
            "push",
            **_who(principal),
            outcome="rejected",
            reason=reason,
            generation=self.store.current.generation,
        )
        log.warning("secrets push rejected", extra={"fields": {"reason": reason}})

    def clear(self, *, principal: Principal | None = None) -> Snapshot:
        """Drop every secret (wiped once in-flight reads finish)."""
        started = time.perf_counter()
        snapshot = self.store.clear()
        self.metrics.pushes.labels("cleared").inc()
        self.metrics.loaded.set(0)
        self.audit.record(
            "clear",
            **_who(principal),
            outcome="ok",
            generation=snapshot.generation,
            latency_us=_micros(started),
        )
        log.info("secrets cleared", extra={"fields": {"generation": snapshot.generation}})
        return snapshot

    def status(self) -> BrokerStatus:
        snapshot = self.store.current
        return BrokerStatus(
            generation=snapshot.generation,
            loaded_at=iso_time(snapshot.loaded_at),
            count=len(snapshot),
        )

    # The session cache, per principal.

    def cache_get(self, principal: Principal) -> dict[str, str] | None:
        """The caller's own cached secrets, or None (absent or expired)."""
        self._require_cache(principal)
        values = self.cache.get(principal.name)
        self.audit.record(
            "cache_get",
            **_who(principal),
            outcome="hit" if values is not None else "miss",
            count=len(values or {}),
        )
        return values

    def cache_put(self, principal: Principal, values: Mapping[str, str], ttl_secs: int) -> int:
        """Cache the caller's secrets; returns the TTL applied (capped by the server)."""
        self._require_cache(principal)
        for index, name in enumerate(values):
            if not valid_name(name):
                raise BadRequest(f"secret #{index + 1}: {NAME_RULE}")
        ttl = self.cache.put(principal.name, values, ttl_secs)
        self.audit.record(
            "cache_put", **_who(principal), outcome="ok", count=len(values), ttl_secs=ttl
        )
        return ttl

    def cache_lock(self, principal: Principal) -> bool:
        """Drop the caller's cache entry now."""
        self._require_cache(principal)
        dropped = self.cache.lock(principal.name)
        self.audit.record("lock", **_who(principal), outcome="ok", dropped=dropped)
        return dropped

    def _require_cache(self, principal: Principal) -> None:
        if not self.policy.current.may(principal, VERB_CACHE):
            self.audit.record("cache", **_who(principal), outcome="deny")
            raise Forbidden("caller may not use the session cache")

    # Hooks.

    def peer_rejected(self, conn: ConnectionInfo, listener: str) -> None:
        """resources.peer_rejected_hooks: audit a socket peer the listener refused."""
        fields: dict[str, Any] = {"listener": listener, "outcome": "rejected"}
        if conn.peer is not None:
            fields["uid"] = conn.peer.uid
            fields["gid"] = conn.peer.gid
            if conn.peer.pid:
                fields["pid"] = conn.peer.pid
        self.audit.record("peer_rejected", **fields)

    def reload_policy(self) -> None:
        """SIGHUP hook: re-read the consumers file (an invalid one keeps the old policy)."""
        self.policy.reload()

    def _policy_reloaded(self, outcome: str, source: str, reason: str | None) -> None:
        self.metrics.policy_reloads.labels(outcome).inc()
        fields: dict[str, Any] = {"outcome": outcome, "source": source}
        if reason is not None:
            fields["reason"] = reason
        self.audit.record("policy_reload", **fields)


async def open_broker(settings: Settings, registry: CollectorRegistry) -> SecretsBroker:
    """Build and start a broker; an invalid consumers file refuses the start."""
    try:
        broker = SecretsBroker(settings, registry=registry)
    except PolicyError as exc:
        raise StartupError(f"secrets consumers file: {exc}") from None
    await broker.start()
    return broker
