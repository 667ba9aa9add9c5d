"""Exception handlers that render every error as `{"error": "<message>"}`."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from fastapi import FastAPI
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
    known = declared_names(request.app) if isinstance(request.app, FastAPI) else ()
    return error_json(422, describe_request_errors(exc.errors(), known=known))


# Where a parameter comes from: the first element of every error location.
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
HIDDEN_KEY = "<key>"


def describe_request_errors(errors: Any, *, known: Collection[str] = ()) -> str:
    """`body.limit: Input should be a valid integer; ...` — readable, never echoing input.

    A location names fields the API declares (`known`) and list positions; any other key
    was chosen by the caller (an extra field, a key of a free-form object) and may be a
    value typed in the wrong place, so it is shown as `<key>`."""
    parts = []
    for err in list(errors)[:5]:
        loc = ".".join(_location_part(p, known) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            msg = "malformed JSON"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid request: " + "; ".join(parts)


def _location_part(part: Any, known: Collection[str]) -> str:
    if isinstance(part, int) or part in _SOURCES or part in known:
        return str(part)
    return HIDDEN_KEY


def declared_names(app: FastAPI) -> frozenset[str]:
    """Every property and parameter name the app's OpenAPI document declares; collected
    at the first validation error and kept on the app."""
    names: frozenset[str] | None = getattr(app.state, "declared_names", None)
    if names is None:
        names = frozenset(_names_in(app.openapi()))
        app.state.declared_names = names
    return names


def _names_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            yield from (name for name in properties if isinstance(name, str))
        if node.get("in") in _SOURCES and isinstance(node.get("name"), str):
            yield node["name"]
        for value in node.values():
            yield from _names_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from _names_in(value)
