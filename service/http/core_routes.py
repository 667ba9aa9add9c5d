"""Routes every listener shares: health, version, metrics, and the OpenAPI documents."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from service import NAME, __version__
from service.auth import Caller, ResourcesDep
from service.errors import error_responses
from service.http.routers import api_router
from service.resources import Resources

router = api_router()


class Health(BaseModel):
    status: str
    version: str
    uptime_secs: int


class VersionInfo(BaseModel):
    version: str
    name: str


def health_payload(resources: Resources) -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "uptime_secs": int(resources.uptime_secs)}


def version_payload(resources: Resources) -> dict[str, Any]:
    return {"version": __version__, "name": NAME}


# Answered by the hardening middleware directly (same payloads as the routes below, which
# remain for OpenAPI and for apps built without the fast path).
FAST_ROUTES = {"/health": health_payload, "/version": version_payload}


@router.get("/health", operation_id="health", tags=["service"])
async def health(resources: ResourcesDep) -> Health:
    """Liveness: answers while the process serves. Open to every caller."""
    return Health.model_validate(health_payload(resources))


@router.get("/version", operation_id="version", tags=["service"])
async def version(resources: ResourcesDep) -> VersionInfo:
    """The service's name and version. Open to every caller."""
    return VersionInfo.model_validate(version_payload(resources))


@router.get(
    "/metrics",
    operation_id="metrics",
    tags=["service"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **error_responses(401, 403)},
)
async def metrics(caller: Caller, resources: ResourcesDep) -> Response:
    """Prometheus metrics in the text exposition format."""
    body, content_type = resources.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, caller: Caller) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
async def docs(caller: Caller) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{NAME} API")
