"""The secrets broker: store + policy + audit + session cache + opaque handles behind one
small API.

Routes are adapters over this class: every decision (read, handle, cache, push) is made
and audited here, in one shape (`event`, who, `outcome`, names and counts; never a value),
and counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from service.errors import BadRequest, Forbidden, NotFound, StartupError
from service.principal import Principal
from service.secret_names import NAME_RULE, valid_name
from service.secrets.answers import AnswerScrubber, CompiledValues
from service.secrets.audit import AuditLog
from service.secrets.cache import SessionCache
from service.secrets.core_dumps import disable_core_dumps
from service.secrets.handles import HandleRecord, HandleStore
from service.secrets.metrics import SecretsMetrics
from service.secrets.policy import VERB_CACHE, VERB_LIST, PolicyError, project_consumer
from service.secrets.policy_watch import PolicyHolder
from service.secrets.store import SecretStore, Snapshot
from service.settings import Settings

log = logging.getLogger("patina.secrets")


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


@dataclass(frozen=True)
class Resolution:
    """A secret resolved for `patina secrets run`: its value and the handle shown instead."""

    handle: str
    name: str
    value: bytes

    def __repr__(self) -> str:
        return f"Resolution(handle={self.handle!r}, name={self.name!r})"


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
    """One per service, at `resources.broker`."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry,
        owner_uid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` (monotonic seconds) times the session cache and the handles' TTLs."""
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
            projects={
                p.name: project_consumer(p.name, p.allowlist) for p in settings.remo.projects
            },
        )
        self.cache = SessionCache(max_ttl_secs=config.cache_max_ttl_secs, clock=clock)
        # The values of the set, compiled to scrub them out of scry answers; swapped with
        # the store under this lock so the two always describe the same set.
        self.answers = AnswerScrubber(self.may_read)
        self._swap_lock = threading.Lock()
        self.handles = HandleStore(
            max_ttl_secs=config.handle_max_ttl_secs,
            max_per_owner=config.handle_max_per_caller,
            clock=clock,
        )

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
        """Wipe every value (store and cache), drop the handles, stop the tasks, flush the
        audit log."""
        await self.policy.stop()
        await self.cache.stop()
        self.handles.clear()
        with self._swap_lock:
            self.store.close()
            self.answers.install(CompiledValues.of({}))
        self.metrics.loaded.set(0)
        self.audit.close()

    # Reads.

    def names_for(self, principal: Principal) -> list[str]:
        """The names `principal` may read, sorted; never values. Audited as `list`."""
        started = time.perf_counter()
        names = self.policy.current.readable(principal, self.store.current.names())
        allowed = self.policy.current.may(principal, VERB_LIST)
        self._audit(
            "list",
            principal,
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
        value, generation = self.store.value_of(name)
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
        self.metrics.read_decisions[decision].inc()
        fields: dict[str, Any] = {"name": name, "outcome": decision, "via": via}
        if generation is not None:
            fields["generation"] = generation
        self._audit("read", principal, **fields, latency_us=_micros(started))

    # Changes of the set (admin socket).

    def replace(
        self, mapping: Mapping[str, str | bytes], *, principal: Principal | None = None
    ) -> Snapshot:
        """Atomically replace the whole set. Names must be valid (BadRequest otherwise).
        Compiling the set for answer scrubbing takes a while for large sets: call it off
        the event loop."""
        started = time.perf_counter()
        for index, name in enumerate(mapping):
            if not valid_name(name):
                self.reject_push(f"secret #{index + 1} has an invalid name", principal=principal)
                raise BadRequest(f"secret #{index + 1}: {NAME_RULE}")
        return self._swap_in(mapping, event="push", principal=principal, started=started)

    def reject_push(self, reason: str, *, principal: Principal | None = None) -> None:
        """Count and audit a refused push; the live set is untouched. `reason` must not
        quote the body."""
        self.metrics.pushes.labels("rejected").inc()
        self._audit(
            "push",
            principal,
            outcome="rejected",
            reason=reason,
            generation=self.store.current.generation,
        )
        log.warning("secrets push rejected", extra={"fields": {"reason": reason}})

    def clear(self, *, principal: Principal | None = None) -> Snapshot:
        """Drop every secret (wiped once in-flight reads finish)."""
        return self._swap_in({}, event="clear", principal=principal, started=time.perf_counter())

    def _swap_in(
        self,
        mapping: Mapping[str, str | bytes],
        *,
        event: str,
        principal: Principal | None,
        started: float,
    ) -> Snapshot:
        """Compile the set for answer scrubbing, then swap it in together with the store
        (so the two always describe the same set); count, audit and log the change."""
        compiled = CompiledValues.of(
            {name: v.encode() if isinstance(v, str) else bytes(v) for name, v in mapping.items()}
        )
        with self._swap_lock:
            snapshot = self.store.replace(mapping)
            self.answers.install(compiled)
        self.metrics.pushes.labels("ok" if event == "push" else "cleared").inc()
        self.metrics.loaded.set(len(snapshot))
        fields = {"generation": snapshot.generation, "count": len(snapshot)}
        self._audit(event, principal, outcome="ok", **fields, latency_us=_micros(started))
        log.info(
            "secrets replaced" if event == "push" else "secrets cleared", extra={"fields": fields}
        )
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
        self._audit(
            "cache_get",
            principal,
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
        self._audit("cache_put", principal, outcome="ok", count=len(values), ttl_secs=ttl)
        return ttl

    def cache_lock(self, principal: Principal) -> bool:
        """Drop the caller's cache entry now."""
        self._require_cache(principal)
        dropped = self.cache.lock(principal.name)
        self._audit("lock", principal, outcome="ok", dropped=dropped)
        return dropped

    def _require_cache(self, principal: Principal) -> None:
        if not self.policy.current.may(principal, VERB_CACHE):
            self._audit("cache", principal, outcome="deny")
            raise Forbidden("caller may not use the session cache")

    # Opaque handles: minted for a caller, resolved only by that caller.

    def mint_handle(
        self, principal: Principal, name: str, *, ttl_secs: int | None, uses: int | None
    ) -> HandleRecord:
        """A `<secret:…>` handle for `name`, bound to `principal`, living `ttl_secs` (the
        default when None; capped) for `uses` resolutions (unlimited when None). 400 for an
        invalid name, 403 outside the allowlist, 404 when not loaded, 503 past the
        per-caller cap. Audited as `handle_mint`."""
        if not valid_name(name):
            self._audit("handle_mint", principal, name=None, outcome="invalid")
            raise BadRequest(f"invalid secret name: {NAME_RULE}")
        if not self.policy.current.may_read(principal, name):
            self._audit("handle_mint", principal, name=name, outcome="deny")
            raise Forbidden(f"secret {name} is not in the caller's allowlist")
        if name not in self.store.current:
            self._audit("handle_mint", principal, name=name, outcome="not_found")
            raise NotFound(f"secret {name} is not loaded")
        ttl = min(ttl_secs or self.config.handle_default_ttl_secs, self.handles.max_ttl_secs)
        record = self.handles.mint(principal.name, name, ttl_secs=ttl, uses=uses)
        self._audit("handle_mint", principal, name=name, outcome="allow", ttl_secs=ttl, uses=uses)
        return record

    def handles_of(self, principal: Principal) -> list[HandleRecord]:
        """The caller's live handles, soonest to expire first (names, never values)."""
        return self.handles.owned_by(principal.name)

    def revoke_handle(self, principal: Principal, handle_id: str) -> None:
        """Drop one of the caller's handles now (404 unknown, 403 another caller's)."""
        self.handles.revoke(principal.name, handle_id)
        self._audit("handle_revoke", principal, outcome="ok")

    def resolve_handles(
        self, principal: Principal, handle_ids: list[str]
    ) -> list[tuple[HandleRecord, bytes]]:
        """The values behind the caller's own handles, one use of each spent (all or
        nothing). Each value is read again through the policy and the audit log."""
        records = self.handles.claim(principal.name, handle_ids)
        return [(record, self.read(principal, record.name, via="handle")) for record in records]

    def resolve(
        self, principal: Principal, *, handle_ids: list[str], names: list[str]
    ) -> list[Resolution]:
        """Every reference of one `patina secrets run` at once: the caller's handles, then
        secrets by name, in that order. A name comes with a handle of the caller's to show
        in its place (a live unlimited one is reused, else one is minted), so the child's
        output never holds the value and the agent can use the handle again."""
        by_name = [(name, self.read(principal, name, via="run")) for name in names]
        resolved = [
            Resolution(record.handle, record.name, value)
            for record, value in self.resolve_handles(principal, handle_ids)
        ]
        shown = self._placeholders(principal, [name for name, _ in by_name])
        resolved += [Resolution(shown[name], name, value) for name, value in by_name]
        return resolved

    def _placeholders(self, principal: Principal, names: list[str]) -> dict[str, str]:
        reusable = {r.name: r.handle for r in self.handles_of(principal) if r.uses_left is None}
        for name in dict.fromkeys(names):
            if name not in reusable:
                reusable[name] = self.mint_handle(principal, name, ttl_secs=None, uses=None).handle
        return reusable

    # Hooks.

    def peer_rejected(self, listener: str, *, uid: int, gid: int, pid: int | None) -> None:
        """Audit a socket peer a listener refused (wired by the bootstrap)."""
        fields: dict[str, Any] = {"listener": listener, "outcome": "rejected", "uid": uid}
        fields["gid"] = gid
        if pid:
            fields["pid"] = pid
        self.audit.record("peer_rejected", **fields)

    def reload_policy(self) -> None:
        """SIGHUP hook: re-read the consumers file (an invalid one keeps the old policy)."""
        self.policy.reload()

    def refuse_read(self, principal: Principal, name: str | None, outcome: str, via: str) -> None:
        """Audit a read a channel refused before asking (a rate limit): same shape as a
        read the broker refused."""
        self._audit("read", principal, name=name, outcome=outcome, via=via)

    def _audit(self, event: str, principal: Principal | None, **fields: Any) -> None:
        """One audit event about a caller: who it was, then what happened."""
        self.audit.record(event, **_who(principal), **fields)

    def _policy_reloaded(self, outcome: str, source: str, reason: str | None) -> None:
        self.metrics.policy_reloads.labels(outcome).inc()
        fields: dict[str, Any] = {"outcome": outcome, "source": source}
        if reason is not None:
            fields["reason"] = reason
        self.audit.record("policy_reload", **fields)


@asynccontextmanager
async def open_broker(
    settings: Settings,
    *,
    registry: CollectorRegistry,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[SecretsBroker]:
    """A started broker, closed (every value wiped) on exit; an invalid consumers file
    refuses the start."""
    try:
        broker = SecretsBroker(settings, registry=registry, clock=clock)
    except PolicyError as exc:
        raise StartupError(f"secrets consumers file: {exc}") from None
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()
