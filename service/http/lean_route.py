"""A FastAPI route that answers its simplest requests without the dependency solver.

FastAPI solves a route's dependencies anew on every request: it walks the dependency tree,
looks each node up in a per-request cache, and reads the query, header and cookie
parameters of every node even when there are none. For a route that takes only path
parameters and dependencies of the request alone (the secret reads: the caller and the
broker through one `CallerWith`), that walk cost about a third of the route's own time
(BENCHMARKS.md). `LeanRoute` calls those dependencies and the endpoint directly, and
serialises the answer with FastAPI's own `serialize_response`, so the answer is the same.

Anything outside that simple shape keeps FastAPI's handler: a route with a body, query,
header or cookie parameters, a dependency with parameters or sub-dependencies of its own,
a generator, a response class of its own; and, per request, a path parameter that fails
validation (FastAPI's handler then writes the 422, calling the dependencies a second time:
a lean route's dependencies must be lookups without side effects, as `CallerWith` is) or a
dependency override in force (tests that override dependencies get FastAPI's resolution).
FastAPI's telemetry hooks are not called on the lean path; the apps switch them off
(app.py).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import params
from fastapi._compat import ModelField
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from starlette._utils import is_async_callable
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# Everything a dependant can ask for besides its parameters and the request itself.
_SPECIAL_PARAMS = (
    "websocket_param_name",
    "http_connection_param_name",
    "response_param_name",
    "background_tasks_param_name",
    "security_scopes_param_name",
)


@dataclass(frozen=True, slots=True)
class LeanPlan:
    """What a lean request does: call each `(argument name, dependency)` on the request,
    validate the path parameters, call the endpoint and serialise its answer."""

    dependencies: tuple[tuple[str | None, Callable[[Request], Any]], ...]
    status_code: int | None


class LeanRoute(APIRoute):
    """An APIRoute whose simple requests skip FastAPI's dependency solver (module doc)."""

    def get_route_handler(self) -> Handler:
        stock = super().get_route_handler()
        plan = lean_plan(self)
        return stock if plan is None else _lean_handler(self, plan, stock)


def lean_plan(route: APIRoute) -> LeanPlan | None:
    """The lean way to answer `route`, or None when only FastAPI's handler answers it
    the same way."""
    dependant = route.dependant
    if (
        route.body_field is not None
        or route.response_field is None
        or route.stream_item_field is not None
        or route.is_json_stream
        or not isinstance(route.response_class, DefaultPlaceholder)
        or (
            route.status_code is not None and not is_body_allowed_for_status_code(route.status_code)
        )
        or not _plain(dependant)
        or dependant.request_param_name is not None
        or not is_async_callable(dependant.call)
        or not all(_scalar_path_param(field) for field in dependant.path_params)
    ):
        return None
    dependencies: list[tuple[str | None, Callable[[Request], Any]]] = []
    for sub in dependant.dependencies:
        # Only a request-only coroutine, each called once: FastAPI would call a repeated one
        # once per request (its cache), a plain function on a worker thread.
        if (
            not _plain(sub)
            or sub.dependencies
            or sub.path_params
            or sub.request_param_name is None
            or not is_async_callable(sub.call)
            or any(sub.call is call for _, call in dependencies)
        ):
            return None
        assert sub.call is not None
        dependencies.append((sub.name, sub.call))
    return LeanPlan(tuple(dependencies), route.status_code)


# Path parameters read as one value each (FastAPI would read a list for a sequence type, a
# model's fields for a model, and look for other keys for a validation alias).
_SCALARS = (str, int)


def _scalar_path_param(field: ModelField) -> bool:
    info = field.field_info
    return (
        isinstance(info, params.Path)
        and info.annotation in _SCALARS
        and info.validation_alias is None
    )


def _plain(dependant: Dependant) -> bool:
    """No query, header, cookie or body parameter and no special parameter."""
    return not (
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or any(getattr(dependant, name) is not None for name in _SPECIAL_PARAMS)
    )


def _lean_handler(route: APIRoute, plan: LeanPlan, stock: Handler) -> Handler:
    endpoint = route.dependant.call
    assert endpoint is not None
    path_params = route.dependant.path_params
    overrides = route.dependency_overrides_provider
    # FastAPI's default without a status code of the route's own is the Response's: 200.
    status_code = 200 if plan.status_code is None else plan.status_code

    async def handler(request: Request) -> Response:
        if overrides is not None and getattr(overrides, "dependency_overrides", None):
            return await stock(request)
        values: dict[str, Any] = {}
        # FastAPI's order: the dependencies (their 401/403 first), then the parameters.
        for name, call in plan.dependencies:
            value = await call(request)
            if name is not None:
                values[name] = value
        for field in path_params:
            value, errors = field.validate(
                request.path_params[field.alias], values, loc=("path", field.alias)
            )
            if errors:
                return await stock(request)
            values[field.name] = value
        answer = await endpoint(**values)
        if isinstance(answer, Response):
            return answer
        content = await serialize_response(
            field=route.response_field,
            response_content=answer,
            include=route.response_model_include,
            exclude=route.response_model_exclude,
            by_alias=route.response_model_by_alias,
            exclude_unset=route.response_model_exclude_unset,
            exclude_defaults=route.response_model_exclude_defaults,
            exclude_none=route.response_model_exclude_none,
            dump_json=True,
        )
        return Response(content=content, media_type="application/json", status_code=status_code)

    return handler
