"""Policy reloads, the audit log's guarantees, metrics, and tripwires through the app."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from pathlib import Path

import httpx
import pytest

from service.logs import JsonFormatter, TextFormatter
from service.resources import Resources
from service.secrets.audit import AuditLog, tail_lines
from service.secrets.policy import PolicyError, load_policy
from service.transport.connection import ConnectionInfo, PeerCred
from tests.secrets.helpers import (
    OTHER,
    OTHER_UID,
    TRIPWIRE,
    TRIPWIRE_2,
    audit_events,
    push,
    write_consumers,
)
from tests.support.asgi import ClientFactory

SET = {"GITHUB_TOKEN": TRIPWIRE, "DB_PASSWORD": TRIPWIRE_2}


def broker_of(resources: Resources):  # type: ignore[no-untyped-def]
    assert resources.broker is not None
    return resources.broker


async def _status_for_other(client_as: ClientFactory, name: str) -> int:
    async with client_as(OTHER) as other:
        return (await other.get(f"/secrets/{name}")).status_code


@pytest.mark.anyio
async def test_policy_file_change_is_picked_up_without_a_signal(
    client_as: ClientFactory, admin: httpx.AsyncClient, consumers_file: Path
) -> None:
    await push(admin, SET)
    assert await _status_for_other(client_as, "DB_PASSWORD") == 403
    # Written to a temp file and renamed, as editors and ConfigMaps do.
    tmp = consumers_file.with_suffix(".new")
    write_consumers(tmp, f'[[consumers]]\nuid = {OTHER_UID}\nallow = ["DB_*"]\n')
    os.replace(tmp, consumers_file)
    for _ in range(200):  # polled every 50 ms in these settings
        if await _status_for_other(client_as, "DB_PASSWORD") == 200:
            break
        await asyncio.sleep(0.05)
    assert await _status_for_other(client_as, "DB_PASSWORD") == 200
    assert await _status_for_other(client_as, "GITHUB_TOKEN") == 403


@pytest.mark.anyio
async def test_invalid_policy_keeps_the_old_one_logs_and_audits_why(
    client_as: ClientFactory,
    admin: httpx.AsyncClient,
    consumers_file: Path,
    resources: Resources,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await push(admin, SET)
    write_consumers(consumers_file, f'[[consumers]]\nuid = {OTHER_UID}\nallow = ["bad-glob!"]\n')
    with caplog.at_level(logging.ERROR, logger="patina.secrets.policy"):
        resources.sighup()  # what the runner calls on SIGHUP
    assert "keeping the previous policy" in caplog.text
    assert await _status_for_other(client_as, "GITHUB_TOKEN") == 200
    event = [e for e in audit_events(broker_of(resources)) if e["event"] == "policy_reload"][-1]
    assert event["outcome"] == "invalid"
    assert "bad-glob!" in event["reason"]


@pytest.mark.anyio
async def test_sighup_applies_a_valid_policy(
    client_as: ClientFactory, admin: httpx.AsyncClient, consumers_file: Path, resources: Resources
) -> None:
    await push(admin, SET)
    write_consumers(consumers_file, f'[[consumers]]\nuid = {OTHER_UID}\nallow = ["*"]\n')
    resources.sighup()
    assert await _status_for_other(client_as, "DB_PASSWORD") == 200
    events = audit_events(broker_of(resources))
    assert [e["outcome"] for e in events if e["event"] == "policy_reload"][-1] == "ok"


def test_owner_reads_all_can_be_turned_off(tmp_path: Path) -> None:
    path = write_consumers(tmp_path / "c.toml", "owner_reads_all = false\n")
    policy = load_policy(path, owner_uid=1000)
    from service.principal import LOCAL_SCOPES, Principal

    owner = Principal(transport="uds", name="uid:1000", scopes=LOCAL_SCOPES, uid=1000)
    assert not policy.may_read(owner, "ANY")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[consumers]]\nallow = ['A']\n", "needs one of uid, token or subject"),
        ("[[consumers]]\nuid = 1\nscopes = ['write']\n", "unknown scopes"),
        ("[[consumers]]\nuid = 1\ntoken = 'x'\n", "cannot be combined"),
        ("[[consumers]]\nuid = 1\ncolour = 'red'\n", "unknown keys"),
        ("owner_reads_all = 'yes'\n", "true or false"),
        ("[[consumers]\n", "not valid TOML"),
    ],
)
def test_invalid_consumers_files_are_refused_with_a_reason(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = write_consumers(tmp_path / "c.toml", text)
    with pytest.raises(PolicyError, match=fragment):
        load_policy(path, owner_uid=1000)


# The audit log.


def test_audit_file_is_0600_and_one_json_object_per_line(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "data" / "audit.jsonl")
    audit.start()
    for i in range(50):
        audit.record("read", principal="uid:1", name=f"N{i}", outcome="allow", latency_us=1)
    assert audit.flush()
    audit.close()
    path = tmp_path / "data" / "audit.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert len(lines) == 50
    assert tail_lines(path, 3)[-1].startswith('{"ts":')
    assert '"name":"N49"' in tail_lines(path, 1)[0]


def test_a_burst_of_events_is_written_in_few_whole_line_writes_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr("service.secrets.audit.os.write", counting_write)
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.start()
    for i in range(2000):
        audit.record("read", principal="uid:1", name=f"N{i}", outcome="allow", latency_us=1)
    assert audit.flush()
    audit.close()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [f"N{i}" for i in range(2000)]
    assert all(chunk.endswith(b"\n") for chunk in writes)  # only whole lines per write
    assert len(writes) < 100  # batched: not one system call per event


def test_a_short_write_is_resumed_without_tearing_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls = 0

    def short_then_full(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:  # e.g. a disk that filled up part-way, then an error
            return real_write(fd, data[:7])
        if calls == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("service.secrets.audit.os.write", short_then_full)
    monkeypatch.setattr("service.secrets.audit.RETRY_SECS", 0.05)
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.start()
    audit.record("read", principal="uid:1", name="ONE", outcome="allow", latency_us=1)
    assert audit.flush(timeout=5.0)
    audit.record("read", principal="uid:1", name="TWO", outcome="allow", latency_us=1)
    assert audit.flush(timeout=5.0)
    audit.close()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["ONE", "TWO"]


def test_unwritable_audit_buffers_in_memory_counts_drops_and_recovers(tmp_path: Path) -> None:
    blocked = tmp_path / "audit.jsonl"
    blocked.mkdir()  # a directory where the file should be: every open fails
    drops: list[int] = []
    audit = AuditLog(blocked, buffer_events=5, on_drop=lambda: drops.append(1))
    audit.start()
    for _ in range(8):
        audit.record("read", outcome="allow")  # returns at once although nothing is written
    assert audit.dropped == 3
    assert len(drops) == 3
    assert not audit.flush(timeout=0.2)
    assert audit.pending == 5
    blocked.rmdir()
    assert audit.flush(timeout=5.0)  # the writer retries and catches up
    audit.close()
    assert len(blocked.read_text().splitlines()) == 5


@pytest.mark.anyio
async def test_rejected_socket_peer_is_audited(
    client_as: ClientFactory, resources: Resources
) -> None:
    stranger = ConnectionInfo("uds", PeerCred(pid=77, uid=999, gid=999), peer_allowed=False)
    async with client_as(stranger) as client:
        assert (await client.get("/secrets")).status_code == 403
    event = [e for e in audit_events(broker_of(resources)) if e["event"] == "peer_rejected"][-1]
    assert event["uid"] == 999
    assert event["pid"] == 77
    assert event["listener"] == "uds"


@pytest.mark.anyio
async def test_push_and_clear_are_audited_with_counts(
    admin: httpx.AsyncClient, resources: Resources
) -> None:
    await push(admin, SET)
    await admin.delete("/admin/secrets")
    events = audit_events(broker_of(resources))
    pushed = [e for e in events if e["event"] == "push"][-1]
    assert pushed["outcome"] == "ok"
    assert pushed["count"] == 2
    assert pushed["uid"] == os.getuid()
    assert [e for e in events if e["event"] == "clear"][-1]["outcome"] == "ok"


# Metrics and tripwires.


@pytest.mark.anyio
async def test_metrics_count_pushes_and_reads_without_names(
    owner: httpx.AsyncClient, admin: httpx.AsyncClient, client_as: ClientFactory
) -> None:
    await push(admin, SET)
    await owner.get("/secrets/GITHUB_TOKEN")
    async with client_as(OTHER) as other:
        await other.get("/secrets/DB_PASSWORD")
    body = (await owner.get("/metrics")).text
    assert "secrets_loaded 2.0" in body
    assert 'secrets_push_total{outcome="ok"} 1.0' in body
    assert 'secrets_reads_total{decision="allow"} 1.0' in body
    assert 'secrets_reads_total{decision="deny"} 1.0' in body
    assert "audit_dropped_total 0.0" in body
    assert "GITHUB_TOKEN" not in body
    assert "DB_PASSWORD" not in body


@pytest.mark.anyio
async def test_tripwire_values_never_leave_through_logs_audit_metrics_or_errors(
    owner: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    client_as: ClientFactory,
    resources: Resources,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    await push(admin, SET)
    bodies.append((await owner.get("/secrets")).text)
    async with client_as(OTHER) as other:
        bodies.append((await other.get("/secrets/DB_PASSWORD")).text)
    bad = b'{"secrets": {"X": "' + TRIPWIRE.encode() + b'", "X": "' + TRIPWIRE.encode() + b'"}}'
    bodies.append((await admin.put("/admin/secrets", content=bad)).text)
    bodies.append((await admin.put("/admin/secrets", content=bad[:-3])).text)
    bodies.append((await admin.put("/admin/secrets", content=bad.replace(b"X", b"x-"))).text)
    bodies.append((await owner.get(f"/secrets/{TRIPWIRE}")).text)  # a value sent as a name
    await owner.post("/secrets/cache", json={"secrets": {"T": TRIPWIRE_2}})
    await owner.post("/secrets/lock")
    bodies.append((await admin.get("/admin/status")).text)
    bodies.append((await owner.get("/metrics")).text)
    broker = broker_of(resources)
    bodies.append(repr(broker) + repr(broker.store) + repr(broker.store.current))
    bodies.append(repr(broker.cache))
    audit_text = broker.audit.path.read_text() if broker.audit.flush() else ""
    assert audit_text.count("\n") > 5
    home_files = "".join(
        p.read_text(errors="replace") for p in resources.settings.home.rglob("*") if p.is_file()
    )
    # The service's own log lines, rendered with both of its formatters (fields included);
    # httpx's records are this test client's, not the service's.
    service_records = [r for r in caplog.records if not r.name.startswith("httpx")]
    logs = "\n".join(
        fmt.format(r) for r in service_records for fmt in (JsonFormatter(), TextFormatter())
    )
    assert "secrets push rejected" in logs
    for haystack in [logs, audit_text, home_files, *bodies]:
        assert TRIPWIRE not in haystack
        assert TRIPWIRE_2 not in haystack
