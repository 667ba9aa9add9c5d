"""Exception handlers that render every error as `{"error": "<message>"}`."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.errors import ServiceError
from service.http.wire import error_body


def error_json(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message), status, headers, media_type="application/json")


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and not isinstance(exc, ServiceError):
        message = "not found"
    elif exc.status_code == 405:
        message = "method not allowed"
    return error_json(exc.status_code, message, dict(exc.headers or {}))


async def validation_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_json(422, describe_request_errors(exc.errors()))


def describe_request_errors(errors: Any) -> str:
    """`body.limit: Input should be a valid integer; ...` — readable, never echoing input."""
    parts = []
    for err in list(errors)[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            msg = "malformed JSON"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid request: " + "; ".join(parts)
