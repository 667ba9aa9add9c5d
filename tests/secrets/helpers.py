"""Constants and helpers shared by the secrets tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from service.secrets.broker import SecretsBroker
from service.settings import Settings, load_settings
from service.transport.connection import ConnectionInfo, PeerCred

OWNER = ConnectionInfo("uds", PeerCred(pid=4242, uid=os.getuid(), gid=os.getgid()))
OTHER_UID = 54321
OTHER = ConnectionInfo("uds", PeerCred(pid=4343, uid=OTHER_UID, gid=OTHER_UID))
ADMIN = ConnectionInfo("admin", PeerCred(pid=4444, uid=os.getuid(), gid=os.getgid()))
TCP = ConnectionInfo("tcp")
CI_TOKEN = "pt_ci-token-for-secrets-tests"
AGENT_TOKEN = "pt_agent-token-for-secrets-tests"

# Tripwires: values that must never show up anywhere but a successful read's body.
TRIPWIRE = "tripwire-9f3c1e7a-DO-NOT-LEAK"
TRIPWIRE_2 = "tripwire-second-55aa-DO-NOT-LEAK"


def write_consumers(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def push(admin: httpx.AsyncClient, secrets: dict[str, str]) -> dict[str, Any]:
    response = await admin.put("/admin/secrets", json={"secrets": secrets})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def audit_events(broker: SecretsBroker) -> list[dict[str, Any]]:
    assert broker.audit.flush(5.0)
    path = broker.audit.path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def broker_settings(tmp_path: Path, consumers: str, **secrets: Any) -> Settings:
    """Settings of a service without knowledge whose consumers file holds `consumers`
    (core dumps left alone: the test process is not a service)."""
    path = write_consumers(tmp_path / "consumers.toml", consumers)
    return load_settings(
        home=tmp_path / "home",
        knowledge={"enabled": False},
        secrets={"consumers_file": path, "disable_core_dumps": False, **secrets},
    )
