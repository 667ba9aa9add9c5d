"""Static checks of compose.yaml: the compose spec, `docker-compose config`, and its promises."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.containers.tools import BIN, COMPOSE_FILE, EMPTY_ENV, run

HOST_IDS = {"UID": "1234", "GID": "2345"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The file as `docker-compose config` resolves it (interpolated, normalised)."""
    out = run(
        ["docker-compose", "--env-file", EMPTY_ENV, "-f", COMPOSE_FILE, "config"], env=HOST_IDS
    ).stdout
    resolved: dict[str, Any] = yaml.safe_load(out)
    return resolved


def test_compose_file_validates_against_the_compose_spec() -> None:
    run([BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE])


def test_docker_compose_refuses_to_run_without_the_host_uid() -> None:
    env = {"UID": "", "GID": ""}
    proc = run(
        ["docker-compose", "--env-file", EMPTY_ENV, "-f", COMPOSE_FILE, "config"],
        env=env,
        check=False,
    )
    assert proc.returncode != 0
    assert "export UID" in proc.stderr


def test_both_services_run_as_the_host_user(config: dict[str, Any]) -> None:
    for name in ("patina", "sidecar"):
        assert config["services"][name]["user"] == "1234:2345"


@pytest.mark.parametrize("name", ["patina", "sidecar"])
def test_services_are_hardened(config: dict[str, Any], name: str) -> None:
    service = config["services"][name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "cap_add" not in service
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert any(t.startswith("/tmp:") for t in service["tmpfs"])
    assert "privileged" not in service


@pytest.mark.parametrize("name", ["patina", "sidecar"])
def test_healthchecks_use_cmd_shell(config: dict[str, Any], name: str) -> None:
    test = config["services"][name]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert len(test) == 2


def test_sidecar_waits_for_a_healthy_service(config: dict[str, Any]) -> None:
    depends = config["services"]["sidecar"]["depends_on"]
    assert depends == {"patina": {"condition": "service_healthy"}}


def test_socket_dir_is_bind_mounted_and_project_is_read_only(config: dict[str, Any]) -> None:
    volumes = {v["target"]: v for v in config["services"]["patina"]["volumes"]}
    assert volumes["/run/patina"]["type"] == "bind"
    assert volumes["/run/patina"]["source"].endswith("/run")
    assert volumes["/project"]["read_only"] is True
    assert volumes["/run/patina-admin"] == {
        "type": "volume",
        "source": "admin",
        "target": "/run/patina-admin",
    }


def test_sidecar_shares_only_the_admin_volume_and_has_no_network(config: dict[str, Any]) -> None:
    sidecar = config["services"]["sidecar"]
    volumes = {v["target"]: v for v in sidecar["volumes"]}
    assert volumes["/run/patina-admin"]["source"] == "admin"
    assert volumes["/vault"]["read_only"] is True
    assert "/run/patina" not in volumes
    assert sidecar["network_mode"] == "none"
    assert "--admin-socket" in sidecar["command"]
    assert sidecar["command"][sidecar["command"].index("--source") + 1].startswith("age:")


def test_admin_volume_is_memory_backed_and_private(config: dict[str, Any]) -> None:
    opts = config["volumes"]["admin"]["driver_opts"]
    assert opts["type"] == "tmpfs"
    assert "uid=1234" in opts["o"]
    assert "gid=2345" in opts["o"]
    assert "mode=0700" in opts["o"]


def test_certificates_token_and_identity_come_through_secrets(config: dict[str, Any]) -> None:
    patina = config["services"]["patina"]
    targets = {s["source"]: s["target"] for s in patina["secrets"]}
    assert targets == {
        "tls_cert": "server.pem",
        "tls_key": "server-key.pem",
        # Settings reads /run/secrets/<env name of the setting>.
        "serve_token": "patina_serve_token",
    }
    env = patina["environment"]
    assert env["PATINA_TLS_CERT"] == "/run/secrets/server.pem"
    assert env["PATINA_TLS_KEY"] == "/run/secrets/server-key.pem"
    assert not any("TOKEN" in key for key in env), "the token never goes through environment"
    assert [s["source"] for s in config["services"]["sidecar"]["secrets"]] == ["age_identity"]
    assert set(config["secrets"]) == {"tls_cert", "tls_key", "serve_token", "age_identity"}


def test_tls_port_is_published_on_loopback_by_default(config: dict[str, Any]) -> None:
    ports = config["services"]["patina"]["ports"]
    assert ports == ["127.0.0.1:50051:50051/tcp"]
    assert config["services"]["patina"]["environment"]["PATINA_TCP"] == "0.0.0.0:50051"
