"""A small HTTP client for the CLI and for other nodes: Unix socket first, TLS + token else.

`open_client()` returns an httpx.Client whose base URL makes relative paths work the same
over either transport. The token is sent only over TLS (or an explicit --insecure URL).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.http.wire import error_message
from service.settings import Settings

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
) -> Target:
    """Explicit options win; otherwise the local socket from settings."""
    if url is None:
        return Target(socket=socket or settings.resolved_socket_path)
    if token is None:
        token = os.environ.get("PATINA_SERVE_TOKEN") or _read_token_file(settings)
    return Target(url=url, token=token, ca=ca, cert=cert, key=key)


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
        transport = httpx.HTTPTransport(uds=str(target.socket), limits=CLIENT_LIMITS)
        return httpx.Client(transport=transport, base_url=UDS_BASE_URL, timeout=timeout)
    assert target.url is not None
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
