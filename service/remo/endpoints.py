"""What each remo socket answers: the admin socket's ops and a project socket's ops.

Both are thin adapters over the secrets broker, so a `push-creds` lands in the same store
as `PUT /admin/secrets` and a `get` is decided and audited exactly like `GET /secrets/NAME`
(event `read`, `via: "remo"`, the project as the principal). Audit events carry names and
counts, never values.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from service import __version__
from service.auth import principal_for
from service.errors import BadRequest, Forbidden, NotFound
from service.principal import Principal
from service.remo.wire import (
    DENIED,
    NOT_FOUND,
    PROTOCOL_ERROR,
    PROTOCOL_VERSION,
    RATE_LIMITED,
    Answer,
    RemoError,
    unknown_op,
    value_fields,
)
from service.resources import Resources
from service.secret_names import NAME_RULE, valid_name
from service.secrets.remo_config import ProjectSocket
from service.transport.connection import ConnectionInfo


class Endpoint(Protocol):
    """The ops one socket serves."""

    frame_cap: int

    async def handle(self, conn: ConnectionInfo, op: str, request: dict[str, Any]) -> Answer:
        """The answer to one parsed request (RemoError for a refusal)."""
        ...


class AdminEndpoint:
    """The admin socket: the sidecar (or remo's manager) replaces, clears and inspects
    the set. Reachable only by the admin socket's allowed uids."""

    OPS = ("push-creds", "clear-creds", "status")

    def __init__(self, resources: Resources, frame_cap: int) -> None:
        self.resources = resources
        self.frame_cap = frame_cap

    async def handle(self, conn: ConnectionInfo, op: str, request: dict[str, Any]) -> Answer:
        caller = principal_for(conn, None, self.resources.tokens)
        broker = self.resources.broker
        if op == "status":
            return self._status()
        if op == "clear-creds":
            snapshot = await asyncio.to_thread(broker.clear, principal=caller)
            return {"ok": True, "secret_count": len(snapshot)}
        if op == "push-creds":
            secrets = self._secrets_of(request, caller)
            # Off the event loop: the set is compiled for answer scrubbing as it swaps in.
            snapshot = await asyncio.to_thread(broker.replace, secrets, principal=caller)
            status = broker.status()
            return {"ok": True, "loaded_at": status.loaded_at, "secret_count": len(snapshot)}
        raise unknown_op(op, self.OPS)

    def _secrets_of(self, request: dict[str, Any], caller: Principal) -> dict[str, str]:
        secrets = request.get("secrets")
        problem = None
        if not isinstance(secrets, dict):
            problem = 'invalid push-creds: "secrets" must be an object'
        else:
            for index, (name, value) in enumerate(secrets.items()):
                if not valid_name(name):
                    problem = f"invalid push-creds: secret #{index + 1}: {NAME_RULE}"
                elif not isinstance(value, str):
                    problem = f"invalid push-creds: secret #{index + 1}: value must be a string"
                if problem:
                    break
        if problem is not None:
            self.resources.broker.reject_push(problem, principal=caller)
            raise RemoError(PROTOCOL_ERROR, problem)
        assert isinstance(secrets, dict)
        return secrets

    def _status(self) -> Answer:
        status = self.resources.broker.status()
        settings = self.resources.settings
        projects = [
            {
                "name": p.name,
                "socket_path": str(p.socket_path(settings.resolved_run_dir)),
                "allowlist_size": len(p.allowlist),
                "cache_entries": 0,
            }
            for p in settings.remo.projects
        ]
        return {
            "ok": True,
            "broker_version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "uptime_seconds": int(self.resources.uptime_secs),
            "secrets_loaded_at": status.loaded_at,
            "secret_count": status.count,
            "projects": projects,
        }


class RateLimit:
    """At most `per_minute` events in any sliding 60 s window (one per project socket)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._times: deque[float] = deque()

    def take(self) -> float:
        """0 when allowed (and counted), else the seconds until a place frees."""
        now = self._clock()
        while self._times and now - self._times[0] >= 60.0:
            self._times.popleft()
        if len(self._times) >= self.per_minute:
            return 60.0 - (now - self._times[0])
        self._times.append(now)
        return 0.0


class ProjectEndpoint:
    """One project's socket: tools in that project's devcontainer `get` the secrets its
    allowlist names, as the principal `project:NAME` whatever their uid."""

    OPS = ("get", "ping", "info")

    def __init__(self, resources: Resources, project: ProjectSocket, frame_cap: int) -> None:
        self.resources = resources
        self.project = project
        self.frame_cap = frame_cap
        self.limit = RateLimit(project.max_gets_per_minute)

    async def handle(self, conn: ConnectionInfo, op: str, request: dict[str, Any]) -> Answer:
        if op == "ping":
            return {
                "ok": True,
                "broker_version": __version__,
                "protocol_version": PROTOCOL_VERSION,
                "project": self.project.name,
            }
        if op == "info":
            return {
                "ok": True,
                "project": self.project.name,
                "allowlist": list(self.project.allowlist),
                "schema_version": 1,
            }
        if op == "get":
            return self._get(conn, request.get("name"))
        raise unknown_op(op, self.OPS)

    def _get(self, conn: ConnectionInfo, name: object) -> Answer:
        broker = self.resources.broker
        caller = principal_for(conn, None, self.resources.tokens)
        if not isinstance(name, str):
            raise RemoError(PROTOCOL_ERROR, 'invalid get: "name" must be a string')
        wait = self.limit.take()
        if wait:
            shown = name if valid_name(name) else None
            broker.refuse_read(caller, shown, RATE_LIMITED, via="remo")
            retry = max(1, math.ceil(wait))
            raise RemoError(
                RATE_LIMITED, "too many get requests on this socket", retry_after_seconds=retry
            )
        try:
            value = broker.read(caller, name, via="remo")
        except BadRequest as exc:
            raise RemoError(PROTOCOL_ERROR, f"invalid get: {exc.message}") from None
        except Forbidden:
            raise RemoError(DENIED, f"{name} is not in this project's allowlist") from None
        except NotFound:
            raise RemoError(NOT_FOUND, f"{name} is allowed but not loaded") from None
        return {"ok": True, **value_fields(value), "ttl_seconds": self.project.cache_ttl_secs}
