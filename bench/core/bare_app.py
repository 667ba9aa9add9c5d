"""Reference apps for the service-core benchmark, served by plain uvicorn.

* `app`: a raw-ASGI hello world, the floor the target ratio is measured against;
* `fastapi_app`: the same answer from an empty FastAPI app, to split the service's cost
  into "the framework" and "everything we add" (middleware, auth, metrics, access log).

Both answer every path with the same small JSON body, so a request for `/metrics` with a
bearer token costs them what a request for `/health` does.
"""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok"}'
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Hello world in raw ASGI: no routing, no framework."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def _make_fastapi() -> Any:
    from fastapi import FastAPI

    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @api.get("/{path:path}")
    async def hello(path: str) -> dict[str, str]:
        """Hello world through FastAPI routing and response serialisation."""
        return {"status": "ok"}

    return api


def __getattr__(name: str) -> Any:
    # Lazy, so the raw-ASGI server never imports FastAPI.
    if name == "fastapi_app":
        return _make_fastapi()
    raise AttributeError(name)
