"""remo's NDJSON framing: one JSON object per line, answered by one JSON object per line.

Requests are objects with an `op`; unknown fields are ignored (remo's rule: additive changes
within a major version). Answers are `{"ok": true, ...}` or
`{"ok": false, "error": CODE, "message": TEXT}`; no message ever quotes the request (a
request may carry values). The published schema is docs/remo-wire.schema.json.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from service.secrets.admin_routes import DuplicateKey, no_duplicate_keys

PROTOCOL_VERSION: Final = 2

# The frame caps. The admin socket carries whole sets (`push-creds`), so it takes remo v2's
# 1 MiB; a project socket only ever receives small `get`s, so it keeps remo's 64 KiB.
ADMIN_FRAME_CAP: Final = 1024 * 1024
PROJECT_FRAME_CAP: Final = 64 * 1024

# remo's error codes (the ones this service can produce).
DENIED: Final = "denied"
NOT_FOUND: Final = "not_found"
RATE_LIMITED: Final = "rate_limited"
PROTOCOL_ERROR: Final = "protocol_error"
INTERNAL_ERROR: Final = "internal_error"
PEER_UNEXPECTED: Final = "peer_unexpected"

Answer = dict[str, Any]


class RemoError(Exception):
    """A request refused with one of remo's error codes."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def answer(self) -> Answer:
        return {"ok": False, "error": self.code, "message": self.message, **self.extra}


def parse_frame(frame: bytes) -> tuple[str, dict[str, Any]]:
    """One request line into (op, object), or RemoError(protocol_error) naming what is
    wrong, never what was sent."""
    try:
        data = json.loads(frame, object_pairs_hook=no_duplicate_keys)
    except DuplicateKey as exc:
        raise RemoError(PROTOCOL_ERROR, f"invalid request: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RemoError(
            PROTOCOL_ERROR, f"invalid request: malformed JSON at column {exc.colno}"
        ) from None
    except (UnicodeDecodeError, RecursionError, ValueError):
        raise RemoError(PROTOCOL_ERROR, "invalid request: not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise RemoError(PROTOCOL_ERROR, "invalid request: expected a JSON object")
    op = data.get("op")
    if not isinstance(op, str):
        raise RemoError(PROTOCOL_ERROR, 'invalid request: "op" must be a string')
    return op, data


def unknown_op(op: str, known: tuple[str, ...]) -> RemoError:
    # The op is quoted only when it is one of ours' shape: it could be anything.
    shown = op if op.replace("-", "").isalpha() and len(op) <= 32 else "?"
    return RemoError(PROTOCOL_ERROR, f"unknown op {shown!r}; this socket serves {', '.join(known)}")


def value_fields(value: bytes) -> Answer:
    """remo's value encoding: UTF-8 text as `value`, anything else as `value_b64`."""
    try:
        return {"value": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"value_b64": base64.b64encode(value).decode("ascii")}


def encode(answer: Answer) -> bytes:
    """One answer line."""
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
