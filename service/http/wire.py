"""The wire format every answer shares, whoever writes it — the exception handlers, the
hardening middleware, the protocol's own refusals (408/431/503 before any app runs) and the
metrics port: `{"error": "<message>"}` bodies and the security headers. Clients read error
bodies with `error_message`.
"""

from __future__ import annotations

import json
from typing import Any

# On every response: no MIME sniffing, no framing, nothing cached (answers may hold secret
# values), no referrer.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
)

# Built once: `json.dumps` with any option builds a new encoder on every call.
_WIRE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_body(payload: Any) -> bytes:
    """Compact UTF-8 JSON, as FastAPI renders it."""
    return _WIRE_JSON.encode(payload).encode()


def error_body(message: str) -> bytes:
    """The body of every error response."""
    return json_body({"error": message})


def json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """Content type and length of a JSON body."""
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` plus each security header it does not already set."""
    names = {name.lower() for name, _ in headers}
    return headers + [header for header in SECURITY_HEADERS if header[0] not in names]


def raw_error_response(
    status: int, reason: bytes, message: str, *, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> bytes:
    """A whole HTTP/1.1 error answer that closes the connection, for refusals made before
    any app runs."""
    body = error_body(message)
    headers = with_security_headers([*json_headers(body), *extra, (b"connection", b"close")])
    head = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


def error_message(payload: object) -> str | None:
    """The message of a parsed `{"error": "..."}` body, or None when it is not one."""
    if isinstance(payload, dict):
        message = payload.get("error")
        if message is not None:
            return str(message)
    return None
