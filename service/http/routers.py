"""How every routes module makes its router: with the error answers any route can give.

The apps serve one flat table of the routers' routes (see app.py), so what an included
router would have inherited from the app is declared here, once, for every router.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.errors import error_responses
from service.http.lean_route import LeanRoute

# A body that is not UTF-8 or JSON (400), the body cap (413), an unexpected failure (500).
ANY_ROUTE = error_responses(400, 413, 500)


def api_router(
    *, responses: dict[int | str, dict[str, Any]] | None = None, **options: Any
) -> APIRouter:
    """An APIRouter whose routes document `ANY_ROUTE`'s answers besides `responses`, and
    answer their simple requests without FastAPI's dependency solver (lean_route.py)."""
    return APIRouter(responses={**ANY_ROUTE, **(responses or {})}, route_class=LeanRoute, **options)
