"""API-level fixtures: a fresh app per test, reached through httpx's ASGI transport as a
given kind of connection (socket owner, stranger, TCP caller)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from service.app import create_app
from service.bootstrap import open_resources
from service.resources import Resources
from service.settings import Settings, load_settings
from service.tokens import TokenRecord, TokenStore, digest
from service.transport.connection import ConnectionInfo, PeerCred
from tests.support.asgi import ClientFactory, client_factory

OWNER = ConnectionInfo("uds", PeerCred(pid=4242, uid=os.getuid(), gid=os.getgid()))
STRANGER = ConnectionInfo("uds", PeerCred(pid=4343, uid=54321, gid=54321), peer_allowed=False)
TCP = ConnectionInfo("tcp")
TEST_TOKEN = "pt_test-token-for-api-tests"


class Echo(BaseModel):
    text: str
    count: int = 1


def probe_router() -> APIRouter:
    """Routes that exist only in tests, to exercise the middleware with bodies and crashes."""
    router = APIRouter()

    @router.post("/_test/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @router.get("/_test/crash")
    async def crash() -> None:
        raise RuntimeError("internal detail that must not leak: /etc/shadow")

    return router


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path, knowledge={"enabled": False})


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    tokens = TokenStore([TokenRecord("tests", digest(TEST_TOKEN), frozenset({"scry"}))])
    async with open_resources(settings, tokens=tokens) as res:
        yield res


@pytest.fixture
def app(resources: Resources) -> FastAPI:
    app = create_app(resources)
    app.include_router(probe_router())
    return app


@pytest.fixture
def client_as(app: FastAPI) -> ClientFactory:
    return client_factory(app)


@pytest.fixture
async def owner(client_as: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with client_as(OWNER) as c:
        yield c
