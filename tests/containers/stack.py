"""The real image and compose stack for the end-to-end container tests.

podman builds the image (Docker image format, so that HEALTHCHECK survives) and serves its
Docker-compatible API socket; Debian's docker-compose 1.29 drives compose.yaml through it.
Without systemd podman runs no healthchecks by itself, so `podman-services.sh` also runs a
healthcheck pump (see ../shared/containers/).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.containers.tools import COMPOSE_FILE, EMPTY_ENV, ROOT, run
from tests.support.process import free_port, short_tmp_dir, uds_client

IMAGE = "localhost/patina-serve:e2e"
PODMAN_SOCKET = Path("/run/podman/podman.sock")
T = TypeVar("T")


def shared_dir() -> Path:
    return Path(os.environ.get("PATINA_SHARED_DIR", str(ROOT.parent / "shared")))


def build_image(tag: str = IMAGE) -> float:
    """Build the image from the project root; returns the seconds it took."""
    started = time.monotonic()
    run(
        ["podman", "build", "--format", "docker", "--tag", tag, ROOT],
        env={"BUILDAH_FORMAT": "docker"},
        timeout=1200,
    )
    return time.monotonic() - started


def api_socket_answers() -> bool:
    if not PODMAN_SOCKET.is_socket():
        return False
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(PODMAN_SOCKET))) as client:
            return client.get("http://d/_ping", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def podman_services() -> Iterator[str]:
    """podman's Docker API socket and healthcheck pump; stopped afterwards if started here."""
    script = shared_dir() / "containers" / "podman-services.sh"
    started_here = not api_socket_answers()
    if started_here:
        run(["bash", script, "start"], timeout=60)
    try:
        yield f"unix://{PODMAN_SOCKET}"
    finally:
        if started_here:
            run(["bash", script, "stop"], timeout=60, check=False)


def wait_for(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll `probe` until it returns a value; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Stack:
    """One compose project with its own host directories, port, certificates and secrets."""

    base: Path
    docker_host: str
    image: str = IMAGE
    project: str = field(default_factory=lambda: f"pe2e{secrets.token_hex(4)}")
    tls_port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: "pt_" + secrets.token_urlsafe(32))
    # A value planted in the vault; it must never show in logs.
    secret_value: str = field(default_factory=lambda: "tripwire-" + secrets.token_hex(12))

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def socket(self) -> Path:
        return self.run_dir / "serve.sock"

    @property
    def certs(self) -> Path:
        return self.base / "certs"

    @property
    def secrets_dir(self) -> Path:
        return self.base / "secrets"

    @property
    def vault_dir(self) -> Path:
        return self.base / "vault"

    @property
    def project_dir(self) -> Path:
        return self.base / "project"

    def env(self) -> dict[str, str]:
        return {
            "DOCKER_HOST": self.docker_host,
            "COMPOSE_PROJECT_NAME": self.project,
            "UID": str(os.getuid()),
            "GID": str(os.getgid()),
            "PATINA_IMAGE": self.image,
            "PATINA_HOST_RUN_DIR": str(self.run_dir),
            "PATINA_HOST_CERTS_DIR": str(self.certs),
            "PATINA_HOST_SECRETS_DIR": str(self.secrets_dir),
            "PATINA_HOST_VAULT_DIR": str(self.vault_dir),
            "PATINA_HOST_PROJECT_DIR": str(self.project_dir),
            "PATINA_HOST_TLS_PORT": str(self.tls_port),
        }

    def prepare(self, project_files: dict[str, str]) -> None:
        """Host side, as docs/containers.md tells a user to do it."""
        self.run_dir.mkdir(mode=0o700)
        self.secrets_dir.mkdir(mode=0o700)
        self.vault_dir.mkdir()
        patina = ROOT / ".venv" / "bin" / "patina"
        run([patina, "tls", "dev-certs", self.certs])
        token_file = self.secrets_dir / "serve.token"
        token_file.touch(mode=0o600)
        token_file.write_text(self.token + "\n")
        run(["age-keygen", "-o", self.secrets_dir / "age-identity.txt"])
        self.write_vault({"API_KEY": self.secret_value})
        for name, text in project_files.items():
            path = self.project_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def write_vault(self, values: dict[str, str]) -> None:
        """Encrypt a dotenv file to the identity with the `age` CLI, replacing the vault."""
        recipient = run(["age-keygen", "-y", self.secrets_dir / "age-identity.txt"]).stdout
        plaintext = "".join(f"{k}={v}\n" for k, v in values.items())
        tmp = self.vault_dir / ".secrets.age.tmp"
        run(["age", "-r", recipient.strip(), "-o", tmp], input_text=plaintext)
        tmp.chmod(0o644)
        tmp.replace(self.vault_dir / "secrets.age")

    def compose(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        # --env-file: a developer's .env beside compose.yaml must not leak in.
        return run(
            ["docker-compose", "--env-file", EMPTY_ENV, "-f", COMPOSE_FILE, *args],
            env=self.env(),
            check=check,
            timeout=timeout,
        )

    def state(self, service: str) -> dict[str, Any]:
        """The container's State from `podman inspect` (empty when it does not exist)."""
        container_id = self.compose("ps", "-q", service).stdout.strip()
        if not container_id:
            return {}
        out = run(["podman", "inspect", container_id], check=False).stdout
        state: dict[str, Any] = json.loads(out)[0]["State"] if out.strip() else {}
        return state

    def health(self, service: str) -> str:
        """Health.Status of a service's container ("starting", "healthy", ...)."""
        state = self.state(service)
        health = state.get("Health") or state.get("Healthcheck") or {}
        return str(health.get("Status", "absent"))

    def wait_healthy(self, *services: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for service in services:
            while self.health(service) != "healthy":
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{service} not healthy after {timeout}s; logs:\n{self.logs()[-6000:]}"
                    )
                time.sleep(0.2)

    def up(self) -> None:
        self.compose("up", "--detach", "--no-build", timeout=300)
        self.wait_healthy("patina", "sidecar")

    def down(self) -> None:
        self.compose("down", "--volumes", "--timeout", "30", check=False, timeout=180)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", check=False).stdout

    def client(self) -> httpx.Client:
        return uds_client(self.socket, timeout=30)

    def tls_client(self, *, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=f"https://localhost:{self.tls_port}",
            verify=ssl.create_default_context(cafile=self.certs / "ca.pem"),
            headers=headers,
            timeout=30,
        )

    def read_secret(self, name: str) -> str | None:
        """The secret's value over the public socket, or None while the service lacks it."""
        try:
            with self.client() as client:
                response = client.get(f"/secrets/{name}")
        except httpx.TransportError:
            return None
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        value: str = response.json()["value"]
        return value


@contextlib.contextmanager
def compose_stack(
    docker_host: str, project_files: dict[str, str], image: str = IMAGE
) -> Iterator[Stack]:
    """A prepared, started stack; always brought down and its directories removed after."""
    stack = Stack(base=short_tmp_dir("pc"), docker_host=docker_host, image=image)
    try:
        stack.prepare(project_files)
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(stack.base, ignore_errors=True)
