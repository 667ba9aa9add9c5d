"""Secrets API fixtures: a fresh service per test (its own home, audit log and consumers
file), reached through httpx's ASGI transport as the socket owner, a stranger, a TCP token
or the admin socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.app import create_admin_app, create_app
from service.bootstrap import open_resources
from service.resources import Resources
from service.secrets.broker import SecretsBroker
from service.settings import Settings, load_settings
from service.tokens import TokenRecord, TokenStore, digest
from tests.secrets.helpers import ADMIN, AGENT_TOKEN, CI_TOKEN, OTHER_UID, OWNER, write_consumers
from tests.support.asgi import ClientFactory, client_factory


@pytest.fixture
def consumers_file(tmp_path: Path) -> Path:
    return write_consumers(
        tmp_path / "consumers.toml",
        f"""
[[consumers]]
uid = {OTHER_UID}
scopes = ["read", "list"]
allow = ["GITHUB_TOKEN", "AWS_*"]

[[consumers]]
token = "ci"
allow = ["DEPLOY_?"]
""",
    )


@pytest.fixture
def settings(tmp_path: Path, consumers_file: Path) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        knowledge={"enabled": False},
        secrets={
            "consumers_file": consumers_file,
            "policy_poll_secs": 0.05,
            "cache_purge_secs": 0.05,
            "cache_max_ttl_secs": 60,
            "disable_core_dumps": False,
        },
    )


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    tokens = TokenStore(
        [
            TokenRecord("ci", digest(CI_TOKEN), frozenset({"secrets"})),
            TokenRecord("agent", digest(AGENT_TOKEN), frozenset({"secrets"})),
        ]
    )
    async with open_resources(settings, tokens=tokens) as res:
        yield res


@pytest.fixture
def broker(resources: Resources) -> SecretsBroker:
    assert resources.broker is not None
    return resources.broker


@pytest.fixture
def client_as(resources: Resources) -> ClientFactory:
    return client_factory(create_app(resources))


@pytest.fixture
def admin_client_as(resources: Resources) -> ClientFactory:
    return client_factory(create_admin_app(resources))


@pytest.fixture
async def owner(client_as: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with client_as(OWNER) as c:
        yield c


@pytest.fixture
async def admin(admin_client_as: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client_as(ADMIN) as c:
        yield c
