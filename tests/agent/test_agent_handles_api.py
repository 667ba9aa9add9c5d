"""Opaque handles through the ASGI app: minted for names the caller may read, bound to
that caller, expiring, with use counts; resolution goes through the broker again."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from service.app import create_admin_app, create_app
from service.bootstrap import open_resources
from service.resources import Resources
from service.secrets.handles import HANDLE_RE
from service.transport.connection import ConnectionInfo, PeerCred, with_connection
from tests.agent.conftest import TRIPWIRE
from tests.secrets.helpers import broker_settings
from tests.support.clock import HandClock

pytestmark = pytest.mark.anyio

OWNER = ConnectionInfo("uds", PeerCred(pid=10, uid=os.getuid(), gid=os.getgid()))
OTHER_UID = 61234
OTHER = ConnectionInfo("uds", PeerCred(pid=11, uid=OTHER_UID, gid=OTHER_UID))
ADMIN = ConnectionInfo("admin", PeerCred(pid=12, uid=os.getuid(), gid=os.getgid()))
Client = Callable[[ConnectionInfo], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def resources(tmp_path: Path, clock: HandClock) -> AsyncIterator[Resources]:
    consumers = (
        f'[[consumers]]\nuid = {OTHER_UID}\nscopes = ["read", "list"]\nallow = ["SHARED_*"]\n'
    )
    settings = broker_settings(
        tmp_path, consumers, handle_max_ttl_secs=3600, handle_max_per_caller=3
    )
    async with open_resources(settings, clock=clock) as res:
        yield res


@pytest.fixture
def clock() -> HandClock:
    return HandClock()


@pytest.fixture
async def client(resources: Resources) -> Client:
    public, admin = create_app(resources), create_admin_app(resources)

    @asynccontextmanager
    async def as_(conn: ConnectionInfo) -> AsyncIterator[httpx.AsyncClient]:
        app = admin if conn.transport == "admin" else public
        transport = httpx.ASGITransport(app=with_connection(app, conn), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://patina.local") as c:
            yield c

    async with as_(ADMIN) as admin_client:
        pushed = await admin_client.put(
            "/admin/secrets",
            json={"secrets": {"API_TOKEN": TRIPWIRE, "SHARED_KEY": "shared-value-0001"}},
        )
        assert pushed.status_code == 200, pushed.text
    return as_


async def mint(c: httpx.AsyncClient, name: str, **extra: object) -> str:
    response = await c.post("/secrets/handles", json={"name": name, **extra})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    handle: str = response.json()["handle"]
    return handle


async def test_minted_handle_resolves_for_its_owner(client: Client) -> None:
    async with client(OWNER) as owner:
        handle = await mint(owner, "API_TOKEN")
        assert HANDLE_RE.fullmatch(handle)
        assert TRIPWIRE not in handle
        response = await owner.post("/secrets/handles/resolve", json={"handles": [handle]})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["secrets"] == [
        {"handle": handle, "name": "API_TOKEN", "value": TRIPWIRE}
    ]


async def test_another_caller_cannot_use_a_handle(client: Client) -> None:
    async with client(OWNER) as owner:
        handle = await mint(owner, "SHARED_KEY")
    async with client(OTHER) as other:
        response = await other.post("/secrets/handles/resolve", json={"handles": [handle]})
        assert response.status_code == 403
        assert "another caller" in response.json()["error"]
        revoke = await other.delete(f"/secrets/handles/{handle[8:-1]}")
        assert revoke.status_code == 403
        # The same name through its own handle works: the allowlist grants SHARED_*.
        own = await mint(other, "SHARED_KEY")
        ok = await other.post("/secrets/handles/resolve", json={"handles": [own]})
    assert ok.json()["secrets"][0]["value"] == "shared-value-0001"


async def test_handles_only_for_names_the_caller_may_read(client: Client) -> None:
    async with client(OTHER) as other:
        denied = await other.post("/secrets/handles", json={"name": "API_TOKEN"})
        assert denied.status_code == 403
    async with client(OWNER) as owner:
        absent = await owner.post("/secrets/handles", json={"name": "NOT_LOADED"})
        assert absent.status_code == 404
        invalid = await owner.post("/secrets/handles", json={"name": "bad name"})
        assert invalid.status_code == 400


async def test_handles_expire(client: Client, clock: HandClock) -> None:
    async with client(OWNER) as owner:
        handle = await mint(owner, "API_TOKEN", ttl_secs=30)
        clock.now += 29
        alive = await owner.post("/secrets/handles/resolve", json={"handles": [handle]})
        assert alive.status_code == 200
        clock.now += 2
        expired = await owner.post("/secrets/handles/resolve", json={"handles": [handle]})
        assert expired.status_code == 404
        listed = await owner.get("/secrets/handles")
    assert listed.json() == {"handles": []}


async def test_use_count_is_spent(client: Client) -> None:
    async with client(OWNER) as owner:
        handle = await mint(owner, "API_TOKEN", uses=2)
        for _ in range(2):
            used = await owner.post("/secrets/handles/resolve", json={"handles": [handle]})
            assert used.status_code == 200
        spent = await owner.post("/secrets/handles/resolve", json={"handles": [handle]})
    assert spent.status_code == 404


async def test_resolution_is_all_or_nothing(client: Client) -> None:
    async with client(OWNER) as owner:
        once = await mint(owner, "API_TOKEN", uses=1)
        unknown = "<secret:" + "0" * 32 + ">"
        failed = await owner.post("/secrets/handles/resolve", json={"handles": [once, unknown]})
        assert failed.status_code == 404
        still = await owner.post("/secrets/handles/resolve", json={"handles": [once]})
        assert still.status_code == 200
        malformed = await owner.post("/secrets/handles/resolve", json={"handles": ["API_TOKEN"]})
        assert malformed.status_code == 400


async def test_list_and_revoke(client: Client) -> None:
    async with client(OWNER) as owner:
        handle = await mint(owner, "API_TOKEN", uses=5)
        listed = (await owner.get("/secrets/handles")).json()["handles"]
        assert [(h["handle"], h["name"], h["uses_left"]) for h in listed] == [
            (handle, "API_TOKEN", 5)
        ]
        assert (await owner.delete(f"/secrets/handles/{handle[8:-1]}")).status_code == 204
        gone = await owner.post("/secrets/handles/resolve", json={"handles": [handle]})
    assert gone.status_code == 404


async def test_live_handles_per_caller_are_capped(client: Client) -> None:
    async with client(OWNER) as owner:
        for _ in range(3):
            await mint(owner, "API_TOKEN")
        full = await owner.post("/secrets/handles", json={"name": "API_TOKEN"})
    assert full.status_code == 503


async def test_no_value_in_handle_listing_or_errors(client: Client) -> None:
    async with client(OWNER) as owner:
        await mint(owner, "API_TOKEN")
        listing = await owner.get("/secrets/handles")
    async with client(OTHER) as other:
        denied = await other.post("/secrets/handles", json={"name": "API_TOKEN"})
    assert TRIPWIRE not in listing.text + denied.text
