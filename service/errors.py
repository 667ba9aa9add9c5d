"""One error hierarchy. Every error leaves the service as `{"error": "<message>"}`.

ServiceError derives from Starlette's HTTPException on purpose: FastAPI re-raises
HTTPException unchanged from inside body parsing, so a body-cap error raised by the
middleware's receive wrapper still reaches the client as 413 and not as a generic 400.
The handlers that render them are in http/error_handlers.py: this module is imported by
the CLI too, and keeps FastAPI out of its start-up.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str


class ServiceError(StarletteHTTPException):
    """Base of every error the service raises on purpose; the message is safe to show."""

    status: ClassVar[int] = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=self.status, detail=message, headers=headers)
        self.message = message


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401

    def __init__(self, message: str = "missing or invalid bearer token") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class PayloadTooLarge(ServiceError):
    status = 413


class ServiceBusy(ServiceError):
    status = 503

    def __init__(self, message: str = "server busy, retry shortly", retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class DeadlineExceeded(ServiceError):
    status = 504

    def __init__(self, message: str = "query exceeded its deadline") -> None:
        super().__init__(message)


# OpenAPI: every route lists the errors it can answer with this shared model.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": _REASONS[status]} for status in statuses}


_REASONS = {
    400: "Bad request",
    401: "Missing or invalid bearer token",
    403: "Caller not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    500: "Internal error (no details are given)",
    422: "Invalid request",
    503: "Busy: retry after the Retry-After seconds",
    504: "Deadline exceeded",
}


class StartupError(Exception):
    """The service refuses to start; the message says what is wrong and how to fix it."""
