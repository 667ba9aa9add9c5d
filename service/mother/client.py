"""A pooled client for one mother node: its Unix socket, or TLS + bearer (+ client cert).

Files are read once, in `MotherClient.open`: the token into memory (never logged, never in
a repr or an error message), the CA, certificate and key into an SSL context. Each node
keeps one httpx.AsyncClient, so its connections (and TLS sessions) are reused across
queries. Answers are read with a size cap: a node is a peer, not a trusted party.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from service.client import UDS_BASE_URL, ssl_context
from service.errors import StartupError
from service.mother.config import MotherNode
from service.mother.hops import HOP_HEADER

ANSWER_CAP = 16 * 1024 * 1024
# Below the server's default keep-alive (5 s), so a pooled connection is never reused just
# as the node closes it.
KEEPALIVE_EXPIRY = 4.0
POOL = httpx.Limits(
    max_connections=32, max_keepalive_connections=8, keepalive_expiry=KEEPALIVE_EXPIRY
)


class AnswerTooLarge(Exception):
    """The node sent more than ANSWER_CAP bytes."""


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
        value = node.token_file.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise StartupError(
            f"mother {node.name}: cannot read token_file {node.token_file}: {reason}"
        ) from None
    if not value or any(c.isspace() for c in value):
        raise StartupError(f"mother {node.name}: token_file {node.token_file} must hold one token")
    return BearerToken(value)


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

    def __init__(
        self, node: MotherNode, *, http: httpx.AsyncClient, token: BearerToken | None
    ) -> None:
        self.node = node
        self._http = http
        self._token = token

    @classmethod
    def open(cls, node: MotherNode) -> MotherClient:
        """Read the node's files and build its pooled client (StartupError on bad files)."""
        timeout = httpx.Timeout(node.timeout)
        socket_path = node.socket_path
        if socket_path is not None:
            # Over the node's socket the peer's uid is the credential: no token is sent.
            transport = httpx.AsyncHTTPTransport(uds=str(socket_path), limits=POOL)
            http = httpx.AsyncClient(
                transport=transport, base_url=UDS_BASE_URL, timeout=timeout, trust_env=False
            )
            return cls(node, http=http, token=None)
        token = read_token(node)
        transport = httpx.AsyncHTTPTransport(verify=node_ssl_context(node), limits=POOL)
        # trust_env off: proxies and netrc from the environment must not see this traffic.
        http = httpx.AsyncClient(
            transport=transport, base_url=node.url, timeout=timeout, trust_env=False
        )
        return cls(node, http=http, token=token)

    @property
    def name(self) -> str:
        return self.node.name

    async def post_json(self, path: str, payload: dict[str, Any], *, hops: int) -> tuple[int, Any]:
        """POST `payload`; the answer's status and JSON (None if it is not JSON).

        Raises httpx errors for transport failures and AnswerTooLarge past the cap."""
        headers = {HOP_HEADER: str(hops)}
        if self._token is not None:
            headers.update(self._token.header())
        async with self._http.stream("POST", path, json=payload, headers=headers) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > ANSWER_CAP:
                raise AnswerTooLarge()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > ANSWER_CAP:
                    raise AnswerTooLarge()
            status = response.status_code
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, None

    async def aclose(self) -> None:
        await self._http.aclose()

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
    if isinstance(exc, httpx.ConnectError):
        # httpx's message is the socket or TLS error ("[Errno 111] Connection refused").
        return f"cannot connect: {str(exc)[:200] or 'connection failed'}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"connection failed: {type(exc).__name__}"
    return type(exc).__name__
