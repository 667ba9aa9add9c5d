"""A small HTTP client for the CLI and for other nodes: Unix socket first, TLS + token else.

`open_client()` returns an httpx.Client whose base URL makes relative paths work the same
over either transport.

Where a bearer token may go:
* only over https://; plain http:// only to a loopback address and only with --insecure
  (the token crosses it unencrypted, readable to anyone who can watch that traffic);
* the token the local service generated (run/serve.token) only to this machine (a
  loopback address): sent to another host it would hand that host our own service.
  A token the user names (--token-file, PATINA_SERVE_TOKEN) goes where the user sends it.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from service.http.wire import error_message
from service.settings import Settings
from service.socket_peer import CheckedUnixTransport
from service.transport.tcp import is_loopback

TOKEN_ENV = "PATINA_SERVE_TOKEN"


class TargetError(ValueError):
    """A URL the client refuses to use as asked; the message says why (never a token)."""


UDS_BASE_URL = "http://patina.local"


@dataclass(frozen=True)
class Target:
    """Where to reach a service and how to authenticate to it."""

    socket: Path | None = None
    url: str | None = None
    token: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False  # plain http:// to a loopback address was asked for explicitly
    note: str | None = None  # why a token was left out, for the user
    service_uid: int | None = None  # who must be at the other end of `socket` (socket_peer)

    def describe(self) -> str:
        return self.url or f"unix://{self.socket}"


def resolve_target(
    settings: Settings,
    *,
    socket: Path | None = None,
    url: str | None = None,
    token: str | None = None,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    insecure: bool = False,
) -> Target:
    """Explicit options win; otherwise the local socket from settings. `token` is one the
    user named (--token-file); without it PATINA_SERVE_TOKEN, then, for this machine
    only, the local service's generated token. Raises TargetError for a URL that would
    carry a token unencrypted."""
    if url is None:
        return Target(
            socket=socket or settings.resolved_socket_path, service_uid=settings.service_uid
        )
    host = check_url(url, insecure=insecure)
    note = None
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is None:
        if is_loopback(host):
            token = _read_token_file(settings)
        elif settings.resolved_generated_token_file.exists():
            note = (
                f"not sending the local service's token ({settings.resolved_generated_token_file}) "
                f"to {host}: it goes only to this machine; name a token with --token-file"
            )
    return Target(url=url, token=token, ca=ca, cert=cert, key=key, insecure=insecure, note=note)


def check_url(url: str, *, insecure: bool = False) -> str:
    """The host of an https:// URL (or of http:// to a loopback address with `insecure`);
    TargetError for any other."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("https", "http") or not host:
        raise TargetError(f"--url must look like https://HOST:PORT, not {url!r}")
    if scheme == "http" and not (insecure and is_loopback(host)):
        raise TargetError(
            f"refusing plain {url}: bearer tokens go only over https:// (plain http:// "
            "is allowed only to a loopback address, with --insecure)"
        )
    return host


def _read_token_file(settings: Settings) -> str | None:
    path = settings.resolved_generated_token_file
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def ssl_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


# An idle pooled connection is dropped before the server's keep-alive (5 s by default) can
# close it: reusing one just as the server closes it fails the request (seen in the soak).
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=4.0)


def open_client(target: Target, *, timeout: float = 30.0) -> httpx.Client:
    if target.socket is not None:
        # Nothing is sent until the socket's peer is known to be the service (WrongPeer).
        checked = CheckedUnixTransport(
            target.socket, service_uid=target.service_uid, limits=CLIENT_LIMITS
        )
        return httpx.Client(transport=checked, base_url=UDS_BASE_URL, timeout=timeout)
    assert target.url is not None
    # Checked again here, for callers that build a Target themselves.
    check_url(target.url, insecure=target.insecure)
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    verify: ssl.SSLContext | bool = True
    if target.url.startswith("https://"):
        verify = ssl_context(target.ca, target.cert, target.key)
    transport = httpx.HTTPTransport(verify=verify, limits=CLIENT_LIMITS)
    return httpx.Client(base_url=target.url, headers=headers, transport=transport, timeout=timeout)


def response_error(response: httpx.Response) -> str:
    """What a refused request's answer says: its `{"error": ...}` message, else its text,
    else the status's reason phrase."""
    try:
        message = error_message(response.json())
    except ValueError:
        message = None
    return message or response.text.strip() or response.reason_phrase
