"""Client side of a Unix socket: make sure the service is at the other end before sending.

A socket path is only a name in a directory. Whoever can write into that directory (a
group-writable run dir, a directory swapped by someone who can write its parent) can
unlink the service's socket and bind their own, and a client that connects by path then
hands its secrets to that process: the sidecar pushes every value, `secrets run` reads
values and handles, `POST /secrets/cache` stores some. The kernel tells a client who
accepted its connection (SO_PEERCRED, the uid the peer had when it called `listen`), so
every client that sends or receives secrets checks that uid before its first byte.

Which uid is expected:
* the `service_uid` setting (or a mother node's `service_uid`) when it is set;
* otherwise this process's own uid (the usual case: the service runs as its user), or the
  owner of the directory holding the socket (a service run by another user or by root, in
  its own run directory). A process can only ever act as its own uid, so an impostor
  shows up as itself, never as the owner of the run directory.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpcore
import httpx

from service.transport.connection import read_peer_cred


class WrongPeer(Exception):
    """The process at the other end of a Unix socket is not the expected service; nothing
    was sent to it."""

    def __init__(self, path: Path | str, peer_uid: int, expected: ExpectedServer) -> None:
        self.path = str(path)
        self.peer_uid = peer_uid
        self.expected = expected
        super().__init__(
            f"refusing to talk to {path}: {self.brief} ({expected.reason}); nothing was "
            "sent. Another user may have replaced the socket. If the service really runs "
            "as that uid, set service_uid (PATINA_SERVICE_UID)."
        )

    @property
    def brief(self) -> str:
        expected = ", ".join(str(uid) for uid in sorted(self.expected.uids))
        return f"served by uid {self.peer_uid}, not by the service's uid ({expected})"


@dataclass(frozen=True)
class ExpectedServer:
    """The uids a client accepts at the other end of one socket, and why."""

    uids: frozenset[int]
    reason: str

    def check(self, sock: socket.socket, path: Path | str) -> None:
        """Raise WrongPeer unless the connected `sock`'s peer runs as an expected uid."""
        peer = read_peer_cred(sock)
        if peer.uid not in self.uids:
            raise WrongPeer(path, peer.uid, self)


def expected_server(path: Path | str, service_uid: int | None = None) -> ExpectedServer:
    """Who may answer on `path`: `service_uid` if given, else our own uid or the owner of
    the socket's directory."""
    if service_uid is not None:
        return ExpectedServer(frozenset({service_uid}), "set by service_uid")
    uids = {os.geteuid()}
    reason = "expected: our own uid"
    try:
        owner = os.stat(Path(path).parent).st_uid
    except OSError:
        owner = None
    if owner is not None and owner not in uids:
        uids.add(owner)
        reason = "expected: our own uid or the owner of the socket's directory"
    return ExpectedServer(frozenset(uids), reason)


_NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _CheckingBackend(httpcore.SyncBackend):
    """httpcore's socket backend, checking the peer of every Unix-socket connection."""

    def __init__(self, expected: ExpectedServer) -> None:
        self.expected = expected

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: object = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_unix_socket(path, timeout, socket_options)  # type: ignore[arg-type]
        try:
            self.expected.check(stream.get_extra_info("socket"), path)
        except BaseException:
            stream.close()
            raise
        return stream


class CheckedUnixTransport(httpx.HTTPTransport):
    """An httpx transport to a Unix socket that refuses a peer other than the service."""

    def __init__(
        self, path: Path | str, *, service_uid: int | None = None, limits: httpx.Limits
    ) -> None:
        # Plain HTTP over the socket: no TLS context is needed, and httpx's default one
        # loads the whole CA bundle (tens of ms on every client start). A context with no
        # trust anchors costs nothing and would refuse any certificate if TLS ever came up.
        super().__init__(uds=str(path), limits=limits, verify=_NO_TLS)
        # httpx takes no network backend, its connection pool does: the same pool httpx
        # builds for `uds=`, with a backend that checks each new connection.
        self._pool = httpcore.ConnectionPool(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            uds=str(path),
            network_backend=_CheckingBackend(expected_server(path, service_uid)),
        )
