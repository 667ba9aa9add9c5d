"""Reach an app in-process, through httpx's ASGI transport, as a given kind of connection
(what a real listener would tag the request with: socket peer, TCP, admin socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from fastapi import FastAPI

from service.transport.connection import ConnectionInfo, with_connection

ClientFactory = Callable[[ConnectionInfo], AbstractAsyncContextManager[httpx.AsyncClient]]


def client_factory(app: FastAPI) -> ClientFactory:
    """`factory(conn)` opens an httpx client whose requests reach `app` as `conn`."""

    @asynccontextmanager
    async def factory(conn: ConnectionInfo) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=with_connection(app, conn), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://patina.local") as c:
            yield c

    return factory
