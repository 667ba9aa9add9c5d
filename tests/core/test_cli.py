"""The core CLI: token create, tls dev-certs, health."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from service.client import ssl_context
from service.tokens import load_tokens_file
from tests.support.process import free_port, run_patina, running_service


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_dev_certs_are_written_with_private_keys_0600(short_tmp: Path) -> None:
    result = run_patina("tls", "dev-certs", str(short_tmp / "certs"))
    assert result.returncode == 0, result.stderr
    certs = short_tmp / "certs"
    for name in ("ca.pem", "server.pem", "client.pem"):
        assert (certs / name).read_text().startswith("-----BEGIN CERTIFICATE-----")
    for name in ("server-key.pem", "client-key.pem", "ca-key.pem"):
        assert _mode(certs / name) == 0o600
    assert b"patina serve --tcp" in result.stdout


def test_token_create_writes_a_0600_file_and_only_the_hash(short_tmp: Path) -> None:
    env = {"PATINA_HOME": str(short_tmp)}
    result = run_patina("token", "create", "ci", "--scope", "scry", env=env)
    assert result.returncode == 0, result.stderr
    token_file = short_tmp / "run" / "tokens" / "ci.token"
    token = token_file.read_text().strip()
    assert _mode(token_file) == 0o600
    assert token.encode() not in result.stdout  # only the path is printed
    tokens_toml = short_tmp / "run" / "tokens.toml"
    assert _mode(tokens_toml) == 0o600
    assert token not in tokens_toml.read_text()
    (record,) = load_tokens_file(tokens_toml)
    assert record.name == "ci"
    assert record.scopes == frozenset({"scry"})
    again = run_patina("token", "create", "ci", env=env)
    assert again.returncode == 2
    assert b"already exists" in again.stderr


def test_created_token_authenticates_over_tls(short_tmp: Path) -> None:
    env = {"PATINA_HOME": str(short_tmp)}
    run_patina("tls", "dev-certs", str(short_tmp / "certs"), env=env)
    run_patina("token", "create", "agent", "--scope", "scry", env=env)
    token = (short_tmp / "run" / "tokens" / "agent.token").read_text().strip()
    certs, port = short_tmp / "certs", free_port()
    args = [
        "--tcp",
        f"127.0.0.1:{port}",
        "--tls-cert",
        str(certs / "server.pem"),
        "--tls-key",
        str(certs / "server-key.pem"),
        "--tokens-file",
        str(short_tmp / "run" / "tokens.toml"),
    ]
    with running_service(args, home=short_tmp) as service:
        client = httpx.Client(verify=ssl_context(certs / "ca.pem", None, None), timeout=10)
        with client:
            ok = client.get(
                f"https://localhost:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
            )
        assert ok.status_code == 200
        assert service.wait_for_log("principal=token:agent")


def test_token_to_stdout_only_when_asked(short_tmp: Path) -> None:
    env = {"PATINA_HOME": str(short_tmp)}
    result = run_patina("token", "create", "ci2", "--stdout", env=env)
    assert result.returncode == 0
    assert result.stdout.decode().strip().startswith("pt_")
    bad = run_patina("token", "create", 'x"]\nscopes=["admin', env=env)
    assert bad.returncode == 2


def test_health_command_over_the_socket_and_when_down(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        up = run_patina("health", "--socket", str(service.socket))
        assert up.returncode == 0
        assert json.loads(up.stdout)["status"] == "ok"
    down = run_patina("health", "--socket", str(service.socket))
    assert down.returncode == 1
    assert b"not answering" in down.stderr
