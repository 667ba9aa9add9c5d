"""The broker as a unit, without HTTP: every decision (read, list, handle, resolution, cache,
push) is made and audited here, in one shape, and no value reaches an audit event."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from service.errors import BadRequest, Forbidden, NotFound, ServiceBusy
from service.principal import LOCAL_SCOPES, Principal
from service.secrets.broker import SecretsBroker, open_broker
from tests.secrets.helpers import broker_settings
from tests.support.clock import HandClock

pytestmark = pytest.mark.anyio

OWNER = Principal("uds", f"uid:{os.getuid()}", LOCAL_SCOPES, uid=os.getuid(), pid=10)
READER_UID = 62001
READER = Principal("uds", f"uid:{READER_UID}", LOCAL_SCOPES, uid=READER_UID, pid=11)
STRANGER = Principal("tcp", "token:ci", frozenset({"secrets"}), token_name="ci")
VALUE = "tw-broker-unit-1f4e9a"
OTHER_VALUE = "tw-broker-unit-other-77c0"


@pytest.fixture
def clock() -> HandClock:
    return HandClock()


@pytest.fixture
async def broker(tmp_path: Path, clock: HandClock) -> AsyncIterator[SecretsBroker]:
    consumers = f'[[consumers]]\nuid = {READER_UID}\nscopes = ["read", "list"]\nallow = ["API_*"]\n'
    settings = broker_settings(tmp_path, consumers, handle_max_per_caller=3)
    async with open_broker(settings, registry=CollectorRegistry(), clock=clock) as opened:
        opened.replace({"API_TOKEN": VALUE, "DB_PASS": OTHER_VALUE})
        yield opened


def events(broker: SecretsBroker) -> list[dict[str, Any]]:
    assert broker.audit.flush(5.0)
    return [json.loads(line) for line in broker.audit.path.read_text().splitlines()]


async def test_a_read_is_decided_by_the_allowlist_before_existence(broker: SecretsBroker) -> None:
    assert broker.read(READER, "API_TOKEN") == VALUE.encode()
    with pytest.raises(Forbidden):
        broker.read(READER, "DB_PASS")
    # Not allowlisted and not loaded: the same 403, so a caller cannot probe names.
    with pytest.raises(Forbidden):
        broker.read(READER, "NOT_LOADED")
    with pytest.raises(NotFound):
        broker.read(READER, "API_MISSING")
    with pytest.raises(BadRequest):
        broker.read(READER, "bad name")
    reads = [(e["name"], e["outcome"]) for e in events(broker) if e["event"] == "read"]
    assert reads == [
        ("API_TOKEN", "allow"),
        ("DB_PASS", "deny"),
        ("NOT_LOADED", "deny"),
        ("API_MISSING", "not_found"),
        (None, "invalid"),
    ]


async def test_names_are_filtered_by_the_allowlist(broker: SecretsBroker) -> None:
    assert broker.names_for(OWNER) == ["API_TOKEN", "DB_PASS"]
    assert broker.names_for(READER) == ["API_TOKEN"]
    assert broker.names_for(STRANGER) == []


async def test_every_event_about_a_caller_has_one_shape(broker: SecretsBroker) -> None:
    broker.read(OWNER, "API_TOKEN")
    broker.names_for(OWNER)
    record = broker.mint_handle(OWNER, "API_TOKEN", ttl_secs=None, uses=None)
    broker.resolve_handles(OWNER, [record.handle_id])
    broker.revoke_handle(OWNER, record.handle_id)
    broker.cache_put(OWNER, {"MINE": "cached-value-1"}, 60)
    broker.resolve(OWNER, handle_ids=[], names=["DB_PASS"])
    about_callers = [e for e in events(broker) if e.get("principal", "internal") != "internal"]
    assert {e["event"] for e in about_callers} >= {
        "read",
        "list",
        "handle_mint",
        "handle_revoke",
        "cache_put",
    }
    for event in about_callers:
        assert {"ts", "event", "principal", "transport", "uid", "pid", "outcome"} <= set(event)
        assert event["principal"] == OWNER.name
    text = broker.audit.path.read_text()
    assert VALUE not in text
    assert OTHER_VALUE not in text
    assert "cached-value-1" not in text


async def test_handles_are_minted_only_for_readable_loaded_names(
    broker: SecretsBroker, clock: HandClock
) -> None:
    with pytest.raises(Forbidden):
        broker.mint_handle(READER, "DB_PASS", ttl_secs=None, uses=None)
    with pytest.raises(NotFound):
        broker.mint_handle(READER, "API_NOT_LOADED", ttl_secs=None, uses=None)
    with pytest.raises(BadRequest):
        broker.mint_handle(READER, "no spaces", ttl_secs=None, uses=None)
    record = broker.mint_handle(READER, "API_TOKEN", ttl_secs=10**9, uses=2)
    assert record.expires_at == clock.now + broker.handles.max_ttl_secs  # capped
    outcomes = [e["outcome"] for e in events(broker) if e["event"] == "handle_mint"]
    assert outcomes == ["deny", "not_found", "invalid", "allow"]


async def test_a_handle_resolves_for_its_owner_until_spent_or_expired(
    broker: SecretsBroker, clock: HandClock
) -> None:
    once = broker.mint_handle(OWNER, "API_TOKEN", ttl_secs=30, uses=1)
    with pytest.raises(Forbidden):
        broker.resolve_handles(READER, [once.handle_id])
    [(record, value)] = broker.resolve_handles(OWNER, [once.handle_id])
    assert (record.name, value) == ("API_TOKEN", VALUE.encode())
    with pytest.raises(NotFound):
        broker.resolve_handles(OWNER, [once.handle_id])  # its one use is spent
    timed = broker.mint_handle(OWNER, "API_TOKEN", ttl_secs=30, uses=None)
    clock.now += 31
    with pytest.raises(NotFound):
        broker.resolve_handles(OWNER, [timed.handle_id])
    # Resolution reads through the policy again: a handle does not outlive the allowlist.
    kept = broker.mint_handle(READER, "API_TOKEN", ttl_secs=None, uses=None)
    broker.replace({"API_TOKEN": "rotated-value-9"})
    assert broker.resolve_handles(READER, [kept.handle_id])[0][1] == b"rotated-value-9"


async def test_one_resolution_answers_handles_then_names_reusing_an_unlimited_handle(
    broker: SecretsBroker,
) -> None:
    limited = broker.mint_handle(OWNER, "DB_PASS", ttl_secs=None, uses=3)
    unlimited = broker.mint_handle(OWNER, "API_TOKEN", ttl_secs=None, uses=None)
    resolved = broker.resolve(OWNER, handle_ids=[limited.handle_id], names=["API_TOKEN", "DB_PASS"])
    assert [(r.name, r.value) for r in resolved] == [
        ("DB_PASS", OTHER_VALUE.encode()),
        ("API_TOKEN", VALUE.encode()),
        ("DB_PASS", OTHER_VALUE.encode()),
    ]
    assert resolved[0].handle == limited.handle
    assert resolved[1].handle == unlimited.handle  # reused
    assert resolved[2].handle not in (limited.handle, unlimited.handle)  # a new one
    assert VALUE not in repr(resolved)


async def test_a_resolution_that_fails_spends_nothing(broker: SecretsBroker) -> None:
    once = broker.mint_handle(READER, "API_TOKEN", ttl_secs=None, uses=1)
    with pytest.raises(Forbidden):
        broker.resolve(READER, handle_ids=[once.handle_id], names=["DB_PASS"])
    assert broker.resolve_handles(READER, [once.handle_id])[0][1] == VALUE.encode()


async def test_live_handles_per_caller_are_capped(broker: SecretsBroker) -> None:
    for _ in range(3):
        broker.mint_handle(READER, "API_TOKEN", ttl_secs=None, uses=1)
    with pytest.raises(ServiceBusy):
        broker.mint_handle(READER, "API_TOKEN", ttl_secs=None, uses=1)


async def test_the_session_cache_is_per_caller_and_needs_its_scope(broker: SecretsBroker) -> None:
    broker.cache_put(OWNER, {"MINE": "cached-value-1"}, 60)
    assert broker.cache_get(OWNER) == {"MINE": "cached-value-1"}
    # READER's entry names read and list, not cache.
    with pytest.raises(Forbidden):
        broker.cache_get(READER)
    assert broker.cache_get(STRANGER) is None  # the default entry: its own cache only
    assert broker.cache_lock(OWNER) is True
    assert broker.cache_get(OWNER) is None


async def test_pushes_and_clears_follow_the_answer_scrubber(broker: SecretsBroker) -> None:
    found = [f"a note with {VALUE} in it"]
    assert broker.answers.scrub(found, OWNER) == ["a note with ${secret:API_TOKEN} in it"]
    assert broker.answers.scrub(found, STRANGER) == ["a note with [REDACTED] in it"]
    broker.clear()
    assert broker.answers.scrub(found, OWNER) is found
    with pytest.raises(NotFound):
        broker.read(OWNER, "API_TOKEN")


async def test_a_refused_socket_peer_is_audited_without_a_principal(
    broker: SecretsBroker,
) -> None:
    broker.peer_rejected("uds", uid=4242, gid=4242, pid=77)
    [event] = [e for e in events(broker) if e["event"] == "peer_rejected"]
    assert event == {
        "ts": event["ts"],
        "event": "peer_rejected",
        "listener": "uds",
        "outcome": "rejected",
        "uid": 4242,
        "gid": 4242,
        "pid": 77,
    }
