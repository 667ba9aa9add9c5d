"""The apps' flat route table: the routes called most come first, and no route is hidden
behind an earlier one that would also match its path."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from service.app import CALLED_MOST, admin_routers, public_routers, route_table


def _sample_path(route: APIRoute) -> str:
    """A concrete path the route serves (`{name}` -> `sample`)."""
    return re.sub(r"\{[^}]+\}", "sample", route.path)


def test_no_route_is_shadowed_by_an_earlier_one() -> None:
    for routers in (public_routers(), admin_routers()):
        table = [route for route in route_table(routers) if isinstance(route, APIRoute)]
        for place, route in enumerate(table):
            path = _sample_path(route)
            for earlier in table[:place]:
                shared = set(earlier.methods) & set(route.methods)
                assert not (shared and earlier.path_regex.match(path)), (
                    f"{sorted(shared)} {route.path} is taken by {earlier.path} first"
                )


def test_the_routes_called_most_come_first_in_their_order() -> None:
    table = route_table(public_routers())
    operations = [getattr(route, "operation_id", None) for route in table]
    assert operations[: len(CALLED_MOST)] == list(CALLED_MOST)


def test_the_checker_sees_a_shadowed_route() -> None:
    read = next(r for r in route_table(public_routers()) if r.path == "/secrets/{name}")
    assert isinstance(read, APIRoute)
    assert read.path_regex.match("/secrets/handles")  # hence GET /secrets/handles before it
