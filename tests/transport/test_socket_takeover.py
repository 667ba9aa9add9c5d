"""Socket takeover by another local user in the sockets' group.

The attack: with a group-writable run dir, a member of the socket group who is not an
allowed uid unlinks admin.sock and serve.sock and binds its own; the sidecar then pushes
every secret to it and the CLI reads from it. The defences, each tried here with a real
second uid (tests run as root; the attacker is a separate process under uid 54321):

* a run dir its group can write is refused unless it has the sticky bit, and modes are
  judged bit by bit (0701-0707 included);
* in a sticky run dir the group cannot unlink or rename the service's sockets;
* where an impostor still gets a socket in place (the service stopped, so the path was
  free), every client checks the peer's uid before sending a byte and stops with a clear
  error: the sidecar, `secrets run`, `health` and a service federating to a unix:// mother;
* a socket's mode and group are set before it appears at its path, never through a path
  that could have been swapped for a symlink.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.errors import StartupError
from service.settings import SettingsError, load_settings
from service.transport import uds
from service.transport.uds import bind_unix_socket, ensure_run_dir
from tests.support.impostor import ATTACKER_UID, SHARED_GID, impostor, share_with_group
from tests.support.process import PATINA, ServiceProcess, run_patina

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to run the attacker under a second uid"
)

TRIPWIRE = "tripwire-takeover-41c9e2-DO-NOT-LEAK"
SHARED_ENV = {
    "PATINA_SOCKET_GROUP": str(SHARED_GID),
    "PATINA_SOCKET_MODE": "0660",
    "PATINA_SECRETS__DISABLE_CORE_DUMPS": "false",
}


@pytest.fixture
def home(short_tmp: Path) -> Path:
    """A home the socket group can traverse, its run dir not yet created."""
    short_tmp.chmod(0o711)
    return short_tmp


def _run_dir(home: Path, mode: int) -> Path:
    run = home / "run"
    run.mkdir()
    share_with_group(run, mode)
    return run


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATINA_HOME": str(home), **extra}


@pytest.fixture
def secrets_file(home: Path) -> Path:
    path = home / "app.env"
    path.write_text(f"DEPLOY_KEY={TRIPWIRE}\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def service(home: Path) -> Iterator[ServiceProcess]:
    """The service in a sticky, group-writable run dir shared with the attacker's group."""
    _run_dir(home, 0o1770)
    process = ServiceProcess(home=home, env={**SHARED_ENV, "PATINA_RUN_DIR_MODE": "1770"})
    try:
        yield process.start()
    finally:
        process.kill()


def _start_refused(home: Path, run_dir_mode: str) -> tuple[int, str]:
    """Start the service in a shared setup; its exit code and log (it must not serve)."""
    service = ServiceProcess(home=home, env={**SHARED_ENV, "PATINA_RUN_DIR_MODE": run_dir_mode})
    service.start(wait=False)
    assert service.proc is not None
    try:
        return service.proc.wait(20), service.log()
    finally:
        service.kill()


def test_a_run_dir_its_group_can_write_without_the_sticky_bit_refuses_to_start(
    home: Path,
) -> None:
    run = _run_dir(home, 0o770)
    code, log = _start_refused(home, "0770")
    assert code == 2
    assert "run_dir_mode" in log
    assert "sticky bit" in log
    assert not (run / "admin.sock").exists()


def test_a_sticky_setting_does_not_excuse_a_run_dir_without_the_sticky_bit(home: Path) -> None:
    run = _run_dir(home, 0o770)
    code, log = _start_refused(home, "1770")
    assert code == 1
    assert f"chmod 1770 {run}" in log


@pytest.mark.parametrize("mode", [0o701, 0o702, 0o704, 0o705, 0o707, 0o770, 0o600, 0o4700])
def test_run_dir_modes_are_judged_bit_by_bit(mode: int, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="run_dir_mode"):
        load_settings(home=tmp_path, run_dir_mode=mode)


@pytest.mark.parametrize("mode", [0o700, 0o710, 0o750, 0o1770, 0o2750, 0o3770])
def test_narrow_run_dir_modes_are_accepted(mode: int, tmp_path: Path) -> None:
    assert load_settings(home=tmp_path, run_dir_mode=mode).run_dir_mode == mode


@pytest.mark.parametrize("actual", [0o701, 0o705, 0o707, 0o760])
def test_an_existing_run_dir_with_a_bit_outside_the_allowed_mode_is_refused(
    actual: int, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(actual)
    with pytest.raises(StartupError, match=f"mode {actual:04o}"):
        ensure_run_dir(run, max_mode=0o750)


def test_the_cli_refuses_a_run_dir_mode_with_bits_for_others(home: Path) -> None:
    result = run_patina("serve", env=_env(home, PATINA_RUN_DIR_MODE="0705"))
    assert result.returncode == 2
    assert b"run_dir_mode" in result.stderr
    assert b"other users" in result.stderr


def test_in_a_sticky_run_dir_the_group_cannot_unlink_or_replace_the_sockets(
    service: ServiceProcess,
) -> None:
    sockets = [service.admin_socket, service.socket]
    before = [os.lstat(path).st_ino for path in sockets]
    # Mode and group were set race-free, before the socket appeared at its path.
    for path in sockets:
        assert os.lstat(path).st_gid == SHARED_GID
    assert stat.S_IMODE(os.lstat(service.socket).st_mode) == 0o660
    with impostor("takeover", sockets) as attacker:
        failed = attacker.wait_for("unlink_failed", count=2)
        refused = attacker.wait_for("bind_failed", count=2)
    assert {e["errno"] for e in failed} == {errno.EPERM}
    assert {e["errno"] for e in refused} == {errno.EADDRINUSE}
    assert [os.lstat(path).st_ino for path in sockets] == before
    with service.client() as client:
        assert client.get("/health").status_code == 200


def test_clients_refuse_an_impostor_and_send_it_nothing(home: Path, secrets_file: Path) -> None:
    # The moment after a routine stop: the service removed its sockets, and in the sticky
    # run dir its group may create files, so the attacker binds both paths first.
    run = _run_dir(home, 0o1770)
    env = _env(home)
    with impostor("bind", [run / "admin.sock", run / "serve.sock"]) as attacker:
        attacker.wait_for("bound", count=2)
        once = run_patina("sidecar", "--source", f"dotenv:{secrets_file}", "--once", env=env)
        run_ = run_patina("secrets", "run", "--env", "KEY=DEPLOY_KEY", "--", "true", env=env)
        health = run_patina("health", env=env)
        follower = _follow_with_sidecar(home, secrets_file)
        attacker.wait_for("received", count=4)
        sent = attacker.received()
    assert TRIPWIRE not in sent
    assert sent == ""  # not one byte: no request line, no header, no value
    for result in (once, run_, health):
        assert result.returncode == 1, result.stderr
        said = result.stderr.decode()
        assert "refusing to talk to" in said
        assert f"served by uid {ATTACKER_UID}" in said
        assert "Traceback" not in said
    assert "refusing to push" in follower
    assert f"served by uid {ATTACKER_UID}" in follower
    assert TRIPWIRE not in follower


def test_the_real_service_passes_the_check_in_a_shared_run_dir(
    service: ServiceProcess, home: Path, secrets_file: Path
) -> None:
    env = _env(home)
    pushed = run_patina("sidecar", "--source", f"dotenv:{secrets_file}", "--once", env=env)
    assert pushed.returncode == 0, pushed.stderr
    health = run_patina("health", env=env)
    assert health.returncode == 0, health.stderr


def _follow_with_sidecar(home: Path, secrets_file: Path) -> str:
    """Run the long-lived sidecar until it reports the impostor; its log."""
    log_path = home / "sidecar.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    env["PATINA_HOME"] = str(home)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [PATINA, "sidecar", "--source", f"dotenv:{secrets_file}", "--status-secs", "0.2"],
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while "refusing to push" not in log_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)
    return log_path.read_text()


def test_service_uid_names_who_may_serve_the_socket(service: ServiceProcess, home: Path) -> None:
    # Configured to expect another uid, the client refuses the real service...
    expected_other = run_patina("health", env=_env(home, PATINA_SERVICE_UID=str(ATTACKER_UID)))
    assert expected_other.returncode == 1
    assert b"served by uid 0" in expected_other.stderr
    # ...and configured for the service's uid, it talks to it.
    ok = run_patina("health", env=_env(home, PATINA_SERVICE_UID="0"))
    assert ok.returncode == 0, ok.stderr


@pytest.mark.anyio
async def test_a_federating_service_refuses_an_impostor_mother(short_tmp: Path) -> None:
    from service.app import create_app
    from service.bootstrap import open_resources
    from service.transport.connection import ConnectionInfo, PeerCred, with_connection

    short_tmp.chmod(0o711)
    shared = short_tmp / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: anyone may create a socket there
    path = shared / "mother.sock"
    settings = load_settings(
        home=short_tmp / "home",
        knowledge={"enabled": False},
        mothers=[{"name": "m", "url": f"unix://{path}"}],
    )
    with impostor("bind", [path]) as attacker:
        attacker.wait_for("bound")
        async with open_resources(settings) as resources:
            app = with_connection(
                create_app(resources), ConnectionInfo("uds", peer=PeerCred(1, 0, 0))
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(
                    "/api/scry", json={"query": "deploy key", "federate": True}
                )
        attacker.wait_for("received")
        sent = attacker.received()
    assert response.status_code == 200
    node = response.json()["nodes"][0]
    assert node["status"] == "error"
    assert f"wrong peer: served by uid {ATTACKER_UID}" in node["error"]
    assert sent == ""


def test_mode_and_group_are_never_set_through_a_path_that_was_swapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between bind and chmod/chown an attacker who can write the directory replaces the
    socket's path with a symlink to a file of the owner's; that file must keep its mode."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA owner\n")
    victim.chmod(0o600)
    target = run / "serve.sock"
    real_bind = socket.socket.bind

    def bind_then_swap(sock: socket.socket, address: object) -> None:
        real_bind(sock, address)  # type: ignore[arg-type]
        # The attacker's move, right after the bind: the public path becomes a symlink.
        if target.exists() or target.is_symlink():
            target.unlink()
        target.symlink_to(victim)

    monkeypatch.setattr(socket.socket, "bind", bind_then_swap)
    try:
        bound = bind_unix_socket(target, mode=0o666, group=str(SHARED_GID))
    except StartupError:
        bound = None  # refusing is fine too; following the symlink is not
    monkeypatch.undo()
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600
    assert os.stat(victim).st_gid != SHARED_GID
    if bound is not None:
        assert stat.S_ISSOCK(os.lstat(target).st_mode)
        uds.remove_socket(bound)
        bound.sock.close()
