"""The sidecar: keeps the service's in-memory set equal to a source.

It pushes the whole set over the admin socket at start, whenever the source changes, and
again whenever the service restarts (a new `boot_id` in `GET /admin/status`, seen after a
reconnect with backoff). A source that turns bad after start is logged and skipped: the
service keeps serving the last good set. Values are never logged; pushes are logged by
generation and count.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.agent.sources import ChangeStamp, SidecarSource, SourceError
from service.client import CLIENT_LIMITS, response_error
from service.socket_peer import CheckedUnixTransport, WrongPeer

log = logging.getLogger("patina.sidecar")

ADMIN_BASE_URL = "http://patina.admin"


class PushError(Exception):
    """The service refused a push (its error message, which never quotes a value)."""


@dataclass(frozen=True)
class ServiceStatus:
    boot_id: str
    generation: int
    count: int
    version: str
    protocol_version: int


def admin_client(
    socket: Path, *, service_uid: int | None = None, timeout: float = 5.0
) -> httpx.Client:
    """A keep-alive client on the admin socket that refuses any peer but the service
    (socket_peer.WrongPeer): a process that took the socket's place gets no push."""
    transport = CheckedUnixTransport(socket, service_uid=service_uid, limits=CLIENT_LIMITS)
    return httpx.Client(transport=transport, base_url=ADMIN_BASE_URL, timeout=timeout)


def get_status(client: httpx.Client) -> ServiceStatus:
    response = client.get("/admin/status")
    _raise_for(response)
    data = response.json()
    return ServiceStatus(
        boot_id=str(data["boot_id"]),
        generation=int(data["generation"]),
        count=int(data["count"]),
        version=str(data["version"]),
        protocol_version=int(data["protocol_version"]),
    )


def push(client: httpx.Client, values: dict[str, str]) -> dict[str, Any]:
    """PUT the whole set; returns {generation, loaded_at, count} or raises PushError."""
    body = json.dumps({"secrets": values}, separators=(",", ":")).encode()
    response = client.put(
        "/admin/secrets", content=body, headers={"content-type": "application/json"}
    )
    _raise_for(response)
    result: dict[str, Any] = response.json()
    return result


def _raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise PushError(f"HTTP {response.status_code}: {response_error(response)}")


class Sidecar:
    """The push loop. `run()` returns when `stop` is set."""

    def __init__(
        self,
        source: SidecarSource,
        admin_socket: Path,
        *,
        poll_secs: float = 0.25,
        status_secs: float = 1.0,
        max_backoff_secs: float = 5.0,
        service_uid: int | None = None,
    ) -> None:
        self.source = source
        self.admin_socket = admin_socket
        self.service_uid = service_uid
        self.poll_secs = poll_secs
        self.status_secs = status_secs
        self.max_backoff_secs = max_backoff_secs
        self.stop = threading.Event()
        self._values: dict[str, str] = {}
        self._stamp: ChangeStamp = ()
        self._pushed: dict[str, str] | None = None  # the set the service holds (from us)
        self._boot: str | None = None  # the service's boot id when we last talked to it
        self._refused: dict[str, str] | None = None  # a set the service refused: no retry
        self._connected: bool | str | None = None

    def __repr__(self) -> str:
        return f"Sidecar(source={str(self.source)!r}, count={len(self._values)})"

    def load_initial(self) -> int:
        """Read the source once (SourceError propagates: a bad source is fatal at start)."""
        self._stamp = self.source.change_stamp()
        self._values = self.source.load()
        return len(self._values)

    def run(self) -> None:
        """Push now, then follow the source and the service until `stop` is set."""
        backoff = 0.1
        next_status = 0.0
        with admin_client(self.admin_socket, service_uid=self.service_uid) as client:
            while not self.stop.is_set():
                self._follow_source()
                now = time.monotonic()
                if self._values != self._pushed or now >= next_status:
                    try:
                        self._sync(client)
                    except WrongPeer as exc:
                        # Not the service: nothing is pushed, and we keep looking until
                        # the service is back at its socket.
                        self._set_connected(False, reason=str(exc), impostor=True)
                        self.stop.wait(backoff)
                        backoff = min(backoff * 2, self.max_backoff_secs)
                        continue
                    except httpx.TransportError as exc:
                        self._set_connected(False, reason=type(exc).__name__)
                        self.stop.wait(backoff)
                        backoff = min(backoff * 2, self.max_backoff_secs)
                        continue
                    backoff = 0.1
                    next_status = now + self.status_secs
                self.stop.wait(self.poll_secs)

    def _follow_source(self) -> None:
        stamp = self.source.change_stamp()
        if stamp == self._stamp:
            return
        try:
            values = self.source.load()
        except SourceError as exc:
            # Keep the last good set (the service keeps serving it); retry on the next change.
            log.error(
                "source unreadable; keeping the last good set",
                extra={"fields": {"reason": str(exc)}},
            )
            self._stamp = stamp
            return
        self._stamp = stamp
        if values != self._values:
            log.info("source changed", extra={"fields": {"count": len(values)}})
            self._values = values

    def _sync(self, client: httpx.Client) -> None:
        status = get_status(client)
        self._set_connected(True)
        if status.boot_id != self._boot:
            if self._boot is not None:
                log.info(
                    "service restarted; pushing again",
                    extra={"fields": {"boot_id": status.boot_id}},
                )
            # A new boot starts with an empty store: nothing of ours is there any more.
            self._boot = status.boot_id
            self._pushed = None
            self._refused = None
        if self._values == self._pushed or self._values == self._refused:
            return
        try:
            result = push(client, self._values)
        except PushError as exc:
            self._refused = self._values
            log.error(
                "push refused; the service keeps its previous set",
                extra={"fields": {"reason": str(exc)}},
            )
            return
        self._pushed = self._values
        log.info(
            "pushed",
            extra={
                "fields": {"generation": result.get("generation"), "count": result.get("count")}
            },
        )

    def _set_connected(self, connected: bool, *, reason: str = "", impostor: bool = False) -> None:
        state = "impostor" if impostor else connected
        if state != self._connected:
            self._connected = state
            if impostor:
                log.error(
                    "admin socket served by another user; refusing to push",
                    extra={"fields": {"socket": str(self.admin_socket), "reason": reason}},
                )
            elif connected:
                log.info(
                    "admin socket reachable", extra={"fields": {"socket": str(self.admin_socket)}}
                )
            else:
                log.warning(
                    "admin socket unreachable; retrying with backoff",
                    extra={"fields": {"socket": str(self.admin_socket), "reason": reason}},
                )


def push_once(
    source: SidecarSource, admin_socket: Path, *, service_uid: int | None = None
) -> dict[str, Any]:
    """Load the source and push it once (SourceError, PushError, WrongPeer and httpx errors
    propagate)."""
    values = source.load()
    with admin_client(admin_socket, service_uid=service_uid) as client:
        return push(client, values)


def check(source: SidecarSource, admin_socket: Path, *, service_uid: int | None = None) -> str:
    """Probe: the source loads and the service serves a set of the same size that we (or
    another sidecar) pushed since it started. Returns a summary or raises an error."""
    values = source.load()
    with admin_client(admin_socket, service_uid=service_uid, timeout=3.0) as client:
        status = get_status(client)
    if status.generation == 0:
        raise PushError("the service holds no pushed set yet")
    if status.count != len(values):
        raise PushError(f"the service holds {status.count} secrets, the source {len(values)}")
    return f"ok: {len(values)} secrets, generation {status.generation}, boot {status.boot_id}"
