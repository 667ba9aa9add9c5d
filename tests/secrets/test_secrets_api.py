"""The secrets routes through the ASGI app: reads, allowlists, the admin API, the cache."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from service.resources import Resources
from service.secrets.broker import SecretsBroker
from service.transport.connection import ConnectionInfo, PeerCred
from tests.secrets.helpers import (
    AGENT_TOKEN,
    CI_TOKEN,
    OTHER,
    OTHER_UID,
    TCP,
    TRIPWIRE,
    TRIPWIRE_2,
    audit_events,
    push,
)
from tests.support.asgi import ClientFactory

pytestmark = pytest.mark.anyio

SET = {
    "GITHUB_TOKEN": TRIPWIRE,
    "AWS_KEY": "aws-value",
    "DB_PASSWORD": TRIPWIRE_2,
    "DEPLOY_1": "deploy-one",
    "DEPLOY_10": "deploy-ten",
}


async def test_owner_reads_a_pushed_secret_with_no_store(
    owner: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await push(admin, SET)
    response = await owner.get("/secrets/GITHUB_TOKEN")
    assert response.status_code == 200
    assert response.json() == {"name": "GITHUB_TOKEN", "value": TRIPWIRE}
    assert response.headers["cache-control"] == "no-store"


async def test_owner_lists_every_name_and_no_value(
    owner: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await push(admin, SET)
    response = await owner.get("/secrets")
    assert response.json() == {"names": sorted(SET)}
    assert TRIPWIRE not in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_other_uid_lists_only_its_allowlist(
    client_as: ClientFactory, admin: httpx.AsyncClient
) -> None:
    await push(admin, SET)
    async with client_as(OTHER) as other:
        response = await other.get("/secrets")
    assert response.json() == {"names": ["AWS_KEY", "GITHUB_TOKEN"]}


async def test_caller_outside_the_allowlist_is_denied_and_audited(
    client_as: ClientFactory, admin: httpx.AsyncClient, broker: SecretsBroker
) -> None:
    await push(admin, SET)
    async with client_as(OTHER) as other:
        response = await other.get("/secrets/DB_PASSWORD")
    assert response.status_code == 403
    assert response.json() == {"error": "secret DB_PASSWORD is not in the caller's allowlist"}
    denied = [e for e in audit_events(broker) if e["event"] == "read"]
    assert denied[-1]["outcome"] == "deny"
    assert denied[-1]["name"] == "DB_PASSWORD"
    assert denied[-1]["uid"] == OTHER_UID
    assert denied[-1]["pid"] == 4343
    assert denied[-1]["principal"] == f"uid:{OTHER_UID}"
    assert isinstance(denied[-1]["latency_us"], int)


async def test_allowlisted_but_absent_secret_is_404(
    client_as: ClientFactory, admin: httpx.AsyncClient
) -> None:
    await push(admin, SET)
    async with client_as(OTHER) as other:
        response = await other.get("/secrets/AWS_SECRET")
    assert response.status_code == 404
    assert response.json() == {"error": "secret AWS_SECRET is not loaded"}


async def test_absent_name_outside_the_allowlist_is_403_not_404(
    client_as: ClientFactory,
) -> None:
    # Existence is not revealed to a caller who may not read the name anyway.
    async with client_as(OTHER) as other:
        response = await other.get("/secrets/NO_SUCH_SECRET")
    assert response.status_code == 403


async def test_invalid_name_is_400_and_audited_without_the_name(
    owner: httpx.AsyncClient, broker: SecretsBroker
) -> None:
    response = await owner.get("/secrets/not-a-valid.name")
    assert response.status_code == 400
    event = [e for e in audit_events(broker) if e["event"] == "read"][-1]
    assert event["outcome"] == "invalid"
    assert event["name"] is None


async def test_tcp_token_without_a_consumer_entry_reads_nothing(
    client_as: ClientFactory, admin: httpx.AsyncClient
) -> None:
    await push(admin, SET)
    headers = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    async with client_as(TCP) as tcp:
        listed = await tcp.get("/secrets", headers=headers)
        read = await tcp.get("/secrets/GITHUB_TOKEN", headers=headers)
    assert listed.json() == {"names": []}
    assert read.status_code == 403


async def test_tcp_token_reads_what_its_glob_allows(
    client_as: ClientFactory, admin: httpx.AsyncClient
) -> None:
    await push(admin, SET)
    headers = {"Authorization": f"Bearer {CI_TOKEN}"}
    async with client_as(TCP) as tcp:
        listed = await tcp.get("/secrets", headers=headers)
        one = await tcp.get("/secrets/DEPLOY_1", headers=headers)
        ten = await tcp.get("/secrets/DEPLOY_10", headers=headers)
    assert listed.json() == {"names": ["DEPLOY_1"]}
    assert one.json()["value"] == "deploy-one"
    assert ten.status_code == 403  # `DEPLOY_?` matches one character only


async def test_tcp_without_token_is_401(client_as: ClientFactory) -> None:
    async with client_as(TCP) as tcp:
        response = await tcp.get("/secrets")
    assert response.status_code == 401


# The admin API.


async def test_push_replaces_the_whole_set_and_bumps_the_generation(
    owner: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    first = await push(admin, SET)
    second = await push(admin, {"ONLY_ONE": "x"})
    assert second["generation"] == first["generation"] + 1
    assert second["count"] == 1
    assert second["loaded_at"].endswith("Z")
    assert (await owner.get("/secrets")).json() == {"names": ["ONLY_ONE"]}
    assert (await owner.get("/secrets/GITHUB_TOKEN")).status_code == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"secrets": {"A": "1", "A": "' + TRIPWIRE.encode() + b'"}}', "duplicate key A"),
        (b'{"secrets": {"bad-name": "' + TRIPWIRE.encode() + b'"}}', "secret #1"),
        (b'{"secrets": {"A": 5}}', "value must be a string"),
        (b'{"secrets": {"A": "1"}, "extra": 1}', "expected"),
        (b'{"A": "' + TRIPWIRE.encode() + b'"}', "expected"),
        (b'{"secrets": {"A": "' + TRIPWIRE.encode() + b'"', "malformed JSON"),
        (b"\xff\xfe not json", "not UTF-8 JSON"),
        (b'{"secrets": {"A": ' + b"9" * 5000 + b"}}", "too many digits"),
        (b'{"secrets": {}, "n": -' + b"1" * 4301 + b"}", "too many digits"),
    ],
)
async def test_malformed_push_is_rejected_and_the_previous_set_keeps_serving(
    owner: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    broker: SecretsBroker,
    body: bytes,
    fragment: str,
) -> None:
    before = await push(admin, {"KEEP": "kept"})
    response = await admin.put(
        "/admin/secrets", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert TRIPWIRE not in response.text
    assert (await owner.get("/secrets/KEEP")).json()["value"] == "kept"
    assert broker.status().generation == before["generation"]
    rejected = [e for e in audit_events(broker) if e["event"] == "push"][-1]
    assert rejected["outcome"] == "rejected"


async def test_oversized_push_is_413_and_the_previous_set_keeps_serving(
    owner: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await push(admin, {"KEEP": "kept"})
    big = {"BIG": "x" * (1024 * 1024 + 1)}
    response = await admin.put("/admin/secrets", json={"secrets": big})
    assert response.status_code == 413
    assert (await owner.get("/secrets/KEEP")).json()["value"] == "kept"


async def test_oversized_chunked_push_is_413_and_audited(
    owner: httpx.AsyncClient, admin: httpx.AsyncClient, broker: SecretsBroker
) -> None:
    await push(admin, {"KEEP": "kept"})

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"secrets": {"BIG": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}}'

    response = await admin.put("/admin/secrets", content=chunks())
    assert response.status_code == 413
    assert (await owner.get("/secrets/KEEP")).json()["value"] == "kept"
    rejected = [e for e in audit_events(broker) if e["event"] == "push"][-1]
    assert rejected["outcome"] == "rejected"


async def test_delete_clears_the_set(owner: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    await push(admin, SET)
    response = await admin.delete("/admin/secrets")
    assert response.status_code == 200
    assert response.json()["count"] == 0
    assert (await owner.get("/secrets")).json() == {"names": []}
    assert (await owner.get("/secrets/GITHUB_TOKEN")).status_code == 404


async def test_admin_status_reports_identity_and_the_set(
    admin: httpx.AsyncClient, resources: Resources
) -> None:
    empty = (await admin.get("/admin/status")).json()
    assert empty["generation"] == 0
    assert empty["count"] == 0
    assert empty["loaded_at"] is None
    pushed = await push(admin, SET)
    status = (await admin.get("/admin/status")).json()
    assert set(status) == {
        "version",
        "protocol_version",
        "uptime_secs",
        "boot_id",
        "generation",
        "loaded_at",
        "count",
    }
    assert status["boot_id"] == resources.boot_id
    assert status["protocol_version"] == 1
    assert status["generation"] == pushed["generation"]
    assert status["count"] == len(SET)
    assert TRIPWIRE not in str(status)
    assert "GITHUB_TOKEN" not in str(status)


async def test_admin_routes_do_not_exist_on_the_public_app(owner: httpx.AsyncClient) -> None:
    assert (await owner.put("/admin/secrets", json={"secrets": {}})).status_code == 404
    assert (await owner.delete("/admin/secrets")).status_code == 404
    assert (await owner.get("/admin/status")).status_code == 404


async def test_admin_routes_need_the_admin_scope(admin_client_as: ClientFactory) -> None:
    # A public-socket identity reaching the admin app holds no admin scope.
    public_peer = ConnectionInfo("uds", PeerCred(pid=1, uid=os.getuid(), gid=os.getgid()))
    async with admin_client_as(public_peer) as client:
        response = await client.put("/admin/secrets", json={"secrets": {"A": "1"}})
    assert response.status_code == 403


async def test_public_read_routes_do_not_exist_on_the_admin_app(admin: httpx.AsyncClient) -> None:
    assert (await admin.get("/secrets")).status_code == 404


async def test_a_read_in_flight_finishes_on_its_snapshot(broker: SecretsBroker) -> None:
    broker.replace({"A": "old"})
    with broker.store.reading() as snapshot:
        broker.replace({"A": "new"})
        assert snapshot.get("A") == b"old"
    with broker.store.reading() as snapshot:
        assert snapshot.get("A") == b"new"


# The session cache.


async def test_cache_round_trip_is_per_principal(
    owner: httpx.AsyncClient, client_as: ClientFactory
) -> None:
    assert (await owner.get("/secrets/cache")).status_code == 404
    stored = await owner.post("/secrets/cache", json={"secrets": {"TOKEN": TRIPWIRE}})
    assert stored.json() == {"status": "cached", "ttl_secs": 60}  # 600 capped to 60
    cached = await owner.get("/secrets/cache")
    assert cached.json() == {"TOKEN": TRIPWIRE}
    assert cached.headers["cache-control"] == "no-store"
    # A caller without a consumer entry still has its own (empty) cache.
    async with client_as(TCP) as tcp:
        headers = {"Authorization": f"Bearer {AGENT_TOKEN}"}
        assert (await tcp.get("/secrets/cache", headers=headers)).status_code == 404


async def test_consumer_without_the_cache_scope_is_refused_the_cache(
    client_as: ClientFactory,
) -> None:
    async with client_as(OTHER) as other:  # its entry grants read and list only
        assert (await other.get("/secrets/cache")).status_code == 403


async def test_lock_drops_the_cache(owner: httpx.AsyncClient) -> None:
    await owner.post("/secrets/cache", json={"secrets": {"TOKEN": "v"}, "ttl_secs": 30})
    locked = await owner.post("/secrets/lock")
    assert locked.json() == {"status": "locked"}
    assert (await owner.get("/secrets/cache")).status_code == 404


async def test_expired_cache_entries_are_purged_without_a_read(
    owner: httpx.AsyncClient, broker: SecretsBroker
) -> None:
    await owner.post("/secrets/cache", json={"secrets": {"TOKEN": "v"}, "ttl_secs": 1})
    assert len(broker.cache) == 1
    for _ in range(200):  # the purge timer runs every 50 ms in these settings
        if len(broker.cache) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(broker.cache) == 0
