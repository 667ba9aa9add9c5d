"""The threat model, as SECURITY.md states it, tried with a real second uid.

An agent running as the owner's uid reads whatever the owner can: handles and scrubbing
only stop accidents. The supported way to keep a hostile or prompt-injected agent away
from raw values is its own uid, admitted to the socket, with a consumers entry that has no
`read` right. This test runs that agent (uid 54321, in the socket's group) with curl, as a
hostile agent would, and checks what it can and cannot do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.impostor import ATTACKER_GID, ATTACKER_UID, SHARED_GID, share_with_group
from tests.support.process import ServiceProcess, uds_client

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to run the agent under a second uid"
)

AGENT_UID = ATTACKER_UID
TRIPWIRE = "tripwire-agent-uid-93be-DO-NOT-LEAK"
CONSUMERS = f"""
[[consumers]]
uid = {AGENT_UID}
name = "agent"
scopes = ["cache"]         # no read: no value, no name, no handle (docs/agent-secrets.md)
allow = []
"""


@pytest.fixture
def service(short_tmp: Path) -> Iterator[ServiceProcess]:
    short_tmp.chmod(0o711)
    run = short_tmp / "run"
    run.mkdir()
    share_with_group(run, 0o750)
    consumers = short_tmp / "consumers.toml"
    consumers.write_text(CONSUMERS)
    process = ServiceProcess(
        home=short_tmp,
        args=["--allow-uid", "0", "--allow-uid", str(AGENT_UID)],
        env={
            "PATINA_RUN_DIR_MODE": "0750",
            "PATINA_SOCKET_GROUP": str(SHARED_GID),
            "PATINA_SOCKET_MODE": "0660",
            "PATINA_SECRETS__CONSUMERS_FILE": str(consumers),
            "PATINA_SECRETS__DISABLE_CORE_DUMPS": "false",
        },
    )
    try:
        process.start()
        with uds_client(process.admin_socket) as admin:
            pushed = admin.put("/admin/secrets", json={"secrets": {"DEPLOY_KEY": TRIPWIRE}})
            assert pushed.status_code == 200
        yield process
    finally:
        process.kill()


def _curl(
    sock: Path, method: str, path: str, body: object = None, **as_agent: object
) -> dict[str, Any]:
    """curl over the Unix socket (as the agent when `as_agent` names a user): the status
    (0 when no HTTP answer came), the body, and all it printed."""
    curl = shutil.which("curl")
    assert curl is not None
    argv = [curl, "-sS", "--unix-socket", str(sock), "-X", method, f"http://x{path}"]
    argv += ["-w", "\n%{http_code}"]
    if body is not None:
        argv += ["-H", "content-type: application/json", "--data", json.dumps(body)]
    result = subprocess.run(  # type: ignore[call-overload]
        argv, capture_output=True, timeout=30, check=False, **as_agent
    )
    text = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    body, _, code = result.stdout.decode(errors="replace").rpartition("\n")
    return {"status": int(code or 0), "text": text, "body": body}


def _as_agent() -> dict[str, object]:
    return {"user": AGENT_UID, "group": ATTACKER_GID, "extra_groups": [SHARED_GID]}


def test_the_owners_uid_reads_every_value_handles_are_not_a_wall(
    service: ServiceProcess,
) -> None:
    # What an agent running as the owner can do, with the owner's curl.
    owner = _curl(service.socket, "GET", "/secrets/DEPLOY_KEY")
    assert owner["status"] == 200
    assert TRIPWIRE in owner["text"]


def test_an_agent_with_its_own_uid_and_no_read_right_gets_no_value(
    service: ServiceProcess,
) -> None:
    with uds_client(service.socket) as owner:
        handle = owner.post("/secrets/handles", json={"name": "DEPLOY_KEY"}).json()["handle"]
    agent = _as_agent()
    names = _curl(service.socket, "GET", "/secrets", **agent)
    read = _curl(service.socket, "GET", "/secrets/DEPLOY_KEY", **agent)
    mint = _curl(service.socket, "POST", "/secrets/handles", {"name": "DEPLOY_KEY"}, **agent)
    resolve = _curl(
        service.socket, "POST", "/secrets/handles/resolve", {"handles": [handle]}, **agent
    )
    admin = _curl(service.admin_socket, "PUT", "/admin/secrets", {"secrets": {}}, **agent)
    # What it can do: reach the socket; listing answers, but names nothing.
    assert names["status"] == 200
    assert json.loads(names["body"]) == {"names": []}
    # What it cannot: read a value, mint a handle, use the owner's handle, push a set.
    assert read["status"] == 403
    assert mint["status"] == 403
    assert resolve["status"] == 403
    assert admin["status"] == 0  # the admin socket is 0600: connect() is refused
    for answer in (names, read, mint, resolve, admin):
        assert TRIPWIRE not in answer["text"]
    # The set it tried to clear is still served.
    with uds_client(service.socket) as owner:
        assert owner.get("/secrets/DEPLOY_KEY").json()["value"] == TRIPWIRE
