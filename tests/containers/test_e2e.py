"""End to end with real containers: the image built by podman, compose.yaml brought up by
docker-compose through podman's Docker API, and every check made from the host, as a user would.

One image per session and one stack per module (bringing a stack up takes seconds); the
tests that stop or restart containers bring up their own stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.containers.stack import (
    IMAGE,
    Stack,
    build_image,
    compose_stack,
    podman_services,
    wait_for,
)
from tests.containers.tools import run

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1500)]

PROJECT_FILES = {
    "README.md": "# Lighthouse\n\nThe lighthouse keeper rotates the lamp every night at dusk.\n",
    "src/tides.py": (
        "def predict_high_tide(moon_phase: float) -> float:\n"
        '    """Hours until the next high tide, from the phase of the moon."""\n'
        "    return 12.42 * moon_phase\n"
    ),
}


@pytest.fixture(scope="session")
def image() -> str:
    build_image(IMAGE)
    return IMAGE


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    with podman_services() as host:
        yield host


@pytest.fixture(scope="module")
def stack(image: str, docker_host: str) -> Iterator[Stack]:
    with compose_stack(docker_host, PROJECT_FILES, image=image) as started:
        yield started


@pytest.fixture
def own_stack(image: str, docker_host: str) -> Iterator[Stack]:
    with compose_stack(docker_host, PROJECT_FILES, image=image) as started:
        yield started


def inspect(ref: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(run(["podman", "image", "inspect", ref]).stdout)
    return data[0]


def test_image_keeps_its_healthcheck_labels_and_non_root_user(image: str) -> None:
    info = inspect(image)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["patina"]
    # Kept only in the Docker image format (podman reports it at the top level).
    healthcheck = info.get("Healthcheck") or config["Healthcheck"]
    assert healthcheck["Test"][0] == "CMD-SHELL"
    assert "patina-healthcheck" in healthcheck["Test"][1]
    assert config["Labels"]["org.opencontainers.image.title"] == "patina-serve"
    assert info["Size"] <= 400 * 1000 * 1000, f"image is {info['Size'] / 1e6:.0f} MB"


def test_image_has_no_compiler_installer_or_hub_client(image: str) -> None:
    probe = (
        "import importlib.util, shutil, sys; "
        "found = [t for t in ('gcc', 'cc', 'make', 'strip', 'pip', 'pip3') if shutil.which(t)]; "
        "found += [m for m in ('pip', 'setuptools', 'huggingface_hub') "
        "if importlib.util.find_spec(m)]; "
        "print(' '.join(found)); sys.exit(1 if found else 0)"
    )
    run(["podman", "run", "--rm", "--network=none", "--entrypoint", "python", image, "-c", probe])


def test_image_refuses_to_serve_a_tampered_model(image: str) -> None:
    # Swap the tokenizer's bytes in a throwaway container, then start the service there.
    tamper = (
        "import pathlib, service; "
        "p = pathlib.Path(service.__file__).parent / 'data' / 'tokenizer.json'; "
        "p.write_text(p.read_text().replace('[UNK]', '[XXX]'))"
    )
    proc = run(
        [
            "podman",
            "run",
            "--rm",
            "--network=none",
            "--user",
            "0",
            "--env",
            "PATINA_RUN_DIR=/tmp/run",
            "--env",
            "PATINA_ADMIN_SOCKET_PATH=/tmp/run/admin.sock",
            "--entrypoint",
            "sh",
            image,
            "-c",
            f'python -c "{tamper}" && exec patina serve',
        ],
        check=False,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "SHA-256 mismatch" in proc.stdout + proc.stderr
    assert "tokenizer.json" in proc.stdout + proc.stderr


def test_host_reaches_health_over_the_bind_mounted_socket(stack: Stack) -> None:
    out = run(
        ["curl", "--silent", "--fail", "--unix-socket", stack.socket, "http://localhost/health"]
    ).stdout
    body = json.loads(out)
    assert body["status"] == "ok"
    # The socket the host opens is the host user's, created by the container.
    assert stack.socket.is_socket()
    assert stack.socket.stat().st_mode & 0o777 == 0o600


def test_index_the_mounted_project_then_scry_finds_it(stack: Stack) -> None:
    with stack.client() as client:
        indexed = client.post("/api/index", json={"wait": True}, timeout=300)
        assert indexed.status_code == 200, indexed.text
        report = indexed.json()
        assert report["state"] == "succeeded", report
        assert report["paths"] == ["/project"]
        assert report["chunks"] >= 2
        response = client.post("/api/scry", json={"query": "when is the next high tide"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results
    assert results[0]["path"].endswith("tides.py"), results
    assert "predict_high_tide" in results[0]["content"]


def test_host_reads_a_secret_the_sidecar_pushed_from_the_age_vault(stack: Stack) -> None:
    value = wait_for(
        lambda: stack.read_secret("API_KEY"), timeout=60, what="the sidecar's first push"
    )
    assert value == stack.secret_value


def test_a_changed_vault_reaches_the_service(stack: Stack) -> None:
    wait_for(lambda: stack.read_secret("API_KEY"), timeout=60, what="the first push")
    stack.write_vault({"API_KEY": stack.secret_value, "ROTATED": "rotated-" + stack.token[-8:]})
    value = wait_for(lambda: stack.read_secret("ROTATED"), timeout=30, what="the re-push")
    assert value == "rotated-" + stack.token[-8:]


def test_tls_port_answers_with_the_dev_ca_and_the_token(stack: Stack) -> None:
    with stack.tls_client(token=stack.token) as client:
        assert client.get("/health").json()["status"] == "ok"
        listed = client.get("/secrets")
        assert listed.status_code == 200, listed.text
    with stack.tls_client() as anonymous:
        refused = anonymous.get("/secrets")
    assert refused.status_code == 401
    assert refused.json() == {"error": refused.json()["error"]}
    with stack.tls_client(token="pt_wrong") as wrong:
        assert wrong.get("/secrets").status_code == 401


def test_no_secret_or_token_reaches_the_logs(stack: Stack) -> None:
    wait_for(lambda: stack.read_secret("API_KEY"), timeout=60, what="the first push")
    logs = stack.logs()
    assert "patina" in logs
    assert "sidecar" in logs
    assert stack.secret_value not in logs
    assert stack.token not in logs


def test_sidecar_pushes_again_after_the_service_restarts(own_stack: Stack) -> None:
    wait_for(lambda: own_stack.read_secret("API_KEY"), timeout=60, what="the first push")
    before = own_stack.state("patina")["StartedAt"]
    own_stack.compose("restart", "patina", timeout=120)
    own_stack.wait_healthy("patina")
    assert own_stack.state("patina")["StartedAt"] != before
    # The store is memory-only: what the host reads now was pushed to the new process.
    value = wait_for(
        lambda: own_stack.read_secret("API_KEY"), timeout=60, what="the re-push after restart"
    )
    assert value == own_stack.secret_value


def test_down_removes_the_socket(own_stack: Stack) -> None:
    assert own_stack.socket.is_socket()
    own_stack.compose("down", "--volumes", "--timeout", "30", timeout=180)
    assert not own_stack.socket.exists()
    assert list(own_stack.run_dir.iterdir()) == []
    leftover = run(
        [
            "podman",
            "ps",
            "--all",
            "--quiet",
            "--filter",
            f"label=com.docker.compose.project={own_stack.project}",
        ]
    ).stdout
    assert leftover.strip() == ""
