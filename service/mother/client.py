"""A pooled client for one mother node: its Unix socket, or TLS + bearer (+ client cert).

Files are read once, in `MotherClient.open`: the token into memory (never logged, never in
a repr or an error message), the CA, certificate and key into an SSL context. Each node
keeps one pool of keep-alive connections (http1.py), reused across queries. Answers are
read with a size cap: a node is a peer, not a trusted party.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from service.client import ssl_context
from service.errors import StartupError
from service.fileio import TokenFileError, read_one_token
from service.mother.config import MotherNode
from service.mother.hops import HOP_HEADER
from service.mother.http1 import (
    AnswerTooLarge,
    Http1Pool,
    NodeUnreachable,
    PoolLimits,
    ProtocolError,
)
from service.socket_peer import expected_server

ANSWER_CAP = 16 * 1024 * 1024
# Below the server's default keep-alive (5 s), so a pooled connection is never reused just
# as the node closes it.
KEEPALIVE_EXPIRY = 4.0
MAX_CONNECTIONS = 32
TIMER_RESOLUTION_SECS = 0.001
MAX_IDLE_CONNECTIONS = 8
# What a request to a node can fail with, besides its deadline (TimeoutError).
NodeFailure = (NodeUnreachable, AnswerTooLarge, ProtocolError, OSError)


class BearerToken:
    """A bearer token held in memory; its repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._value}"}

    def __repr__(self) -> str:
        return "BearerToken(<hidden>)"

    __str__ = __repr__


def read_token(node: MotherNode) -> BearerToken | None:
    """The node's token from its token_file (read once), or None if it has none."""
    if node.token_file is None:
        return None
    try:
        return BearerToken(read_one_token(node.token_file, label="token_file"))
    except TokenFileError as exc:
        raise StartupError(f"mother {node.name}: {exc}") from None


def node_ssl_context(node: MotherNode) -> ssl.SSLContext:
    """Verify the node against ca_file (or the system store); present our client cert."""
    for what, path in (("ca_file", node.ca_file), ("client_cert", node.client_cert)):
        if path is not None and not path.is_file():
            raise StartupError(f"mother {node.name}: {what} {path} is not a file")
    try:
        return ssl_context(node.ca_file, node.client_cert, node.client_key)
    except (OSError, ssl.SSLError) as exc:
        # The reason names the failing step (e.g. "PEM lib"), never file contents.
        raise StartupError(
            f"mother {node.name}: cannot load its TLS files: {_reason(exc)}"
        ) from None


class MotherClient:
    """POSTs JSON to one node and returns (status, parsed JSON) with the size cap applied."""

    def __init__(self, node: MotherNode, *, pool: Http1Pool, token: BearerToken | None) -> None:
        self.node = node
        self._pool = pool
        self._token = token

    @classmethod
    def open(cls, node: MotherNode) -> MotherClient:
        """Read the node's files and build its pooled client (StartupError on bad files).
        Proxy settings from the environment are not consulted: this traffic goes direct."""
        limits = PoolLimits(
            answer_cap=ANSWER_CAP,
            max_connections=MAX_CONNECTIONS,
            max_idle=MAX_IDLE_CONNECTIONS,
            idle_expiry=KEEPALIVE_EXPIRY,
        )
        socket_path = node.socket_path
        if socket_path is not None:
            # Over the node's socket the peer's uid is the credential: no token is sent, and
            # the node is checked to be who its uid says before any query is.
            expected = expected_server(socket_path, node.service_uid)
            pool = Http1Pool(uds=str(socket_path), limits=limits, expected=expected)
            return cls(node, pool=pool, token=None)
        token = read_token(node)
        url = urlsplit(node.url)
        if url.hostname is None:
            raise StartupError(f"mother {node.name}: url {node.url} has no host")
        try:
            port = url.port or 443
        except ValueError:
            raise StartupError(f"mother {node.name}: url {node.url} has an invalid port") from None
        pool = Http1Pool(
            host=url.hostname,
            port=port,
            host_header=url.netloc,
            ssl_context=node_ssl_context(node),
            limits=limits,
        )
        return cls(node, pool=pool, token=token)

    @property
    def name(self) -> str:
        return self.node.name

    async def post_json(self, path: str, payload: dict[str, Any], *, hops: int) -> tuple[int, Any]:
        """POST `payload` within the node's deadline; the answer's status and JSON (None if
        it is not JSON). Raises TimeoutError past the deadline, else one of NodeFailure."""
        headers = {"Content-Type": "application/json", HOP_HEADER: str(hops)}
        if self._token is not None:
            headers.update(self._token.header())
        body = json.dumps(payload, separators=(",", ":")).encode()
        # uvloop rounds timer delays to whole milliseconds, so a deadline can fire up to a
        # millisecond early; the margin keeps "no answer within N ms" true.
        async with asyncio.timeout(self.node.timeout + TIMER_RESOLUTION_SECS):
            status, answer = await self._pool.request("POST", path, body=body, headers=headers)
        try:
            return status, json.loads(answer) if answer else None
        except ValueError:
            return status, None

    async def aclose(self) -> None:
        await self._pool.aclose()

    def __repr__(self) -> str:
        return f"MotherClient(name={self.node.name!r}, url={self.node.url!r})"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free reason for a failed request (shown in the node's status)."""
    if isinstance(exc, AnswerTooLarge):
        return f"answer larger than {ANSWER_CAP // (1024 * 1024)} MiB"
    if isinstance(exc, NodeUnreachable):
        # The socket or TLS error ("Connection refused", "TLS handshake failed: ...").
        return f"cannot connect: {str(exc)[:200] or 'connection failed'}"
    if isinstance(exc, ProtocolError):
        return f"bad answer: {exc}"
    if isinstance(exc, OSError):
        return f"connection failed: {exc.strerror or type(exc).__name__}"
    return type(exc).__name__
