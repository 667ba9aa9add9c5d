"""End to end with real processes on temp sockets: `patina serve` + `patina sidecar`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.secrets.helpers import TRIPWIRE, TRIPWIRE_2
from tests.support.process import (
    PATINA,
    ServiceProcess,
    free_port,
    run_patina,
    short_tmp_dir,
    uds_client,
)

pytestmark = pytest.mark.slow

TCP_TOKEN = "pt_e2e-token-not-in-any-allowlist"


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if condition():
                return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")


class Sidecar:
    """A running `patina sidecar` child; its stderr goes to `log_path`."""

    def __init__(self, home: Path, *args: str) -> None:
        self.log_path = home / "sidecar.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
        env["PATINA_HOME"] = str(home)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [PATINA, "sidecar", *args, "--poll-secs", "0.1", "--status-secs", "0.5"],
                env=env,
                stdout=log,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


@pytest.fixture
def home() -> Iterator[Path]:
    path = short_tmp_dir("pts")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def service(home: Path) -> Iterator[ServiceProcess]:
    port = free_port()
    svc = ServiceProcess(
        home=home,
        args=["--tcp", f"127.0.0.1:{port}", "--insecure"],
        env={"PATINA_SERVE_TOKEN": TCP_TOKEN, "PATINA_SECRETS__POLICY_POLL_SECS": "0.1"},
    )
    svc.port = port  # type: ignore[attr-defined]
    try:
        yield svc.start()
    finally:
        svc.kill()


@pytest.fixture
def sidecars() -> Iterator[list[Sidecar]]:
    started: list[Sidecar] = []
    yield started
    for sidecar in started:
        with contextlib.suppress(Exception):
            sidecar.stop()
        if sidecar.proc.poll() is None:
            sidecar.proc.kill()


def read(service: ServiceProcess, name: str) -> httpx.Response:
    with service.client() as client:
        return client.get(f"/secrets/{name}")


def value_of(service: ServiceProcess, name: str) -> str | None:
    response = read(service, name)
    return str(response.json()["value"]) if response.status_code == 200 else None


def test_dotenv_changes_are_readable_within_two_seconds(
    service: ServiceProcess, home: Path, sidecars: list[Sidecar]
) -> None:
    source = home / "app.env"
    source.write_text(f"API_KEY={TRIPWIRE}\nOTHER=1\n")
    sidecars.append(Sidecar(home, "--source", f"dotenv:{source}"))
    wait_for(lambda: value_of(service, "API_KEY") == TRIPWIRE, timeout=30, what="first push")
    tmp = home / "app.env.tmp"
    tmp.write_text(f"API_KEY={TRIPWIRE_2}\n")
    os.replace(tmp, source)
    wait_for(lambda: value_of(service, "API_KEY") == TRIPWIRE_2, timeout=2.0, what="the change")
    assert read(service, "OTHER").status_code == 404


def _k8s_version(root: Path, stamp: str, files: dict[str, str]) -> None:
    version = root / f"..{stamp}"
    version.mkdir()
    for name, value in files.items():
        (version / name).write_text(value)
    # kubelet's atomic writer: a new `..data_tmp` symlink renamed over `..data`.
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(version.name)
    os.replace(tmp_link, root / "..data")
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")


def test_kubernetes_secret_directory_follows_the_data_symlink_swap(
    service: ServiceProcess, home: Path, sidecars: list[Sidecar]
) -> None:
    mount = home / "mount"
    mount.mkdir()
    _k8s_version(mount, "2024_05_01_10_00_00.1", {"DB_PASSWORD": TRIPWIRE})
    sidecars.append(Sidecar(home, "--source", f"dir:{mount}"))
    wait_for(lambda: value_of(service, "DB_PASSWORD") == TRIPWIRE, timeout=30, what="first push")
    _k8s_version(mount, "2024_05_01_10_05_00.2", {"DB_PASSWORD": TRIPWIRE_2, "NEW_KEY": "n"})
    shutil.rmtree(mount / "..2024_05_01_10_00_00.1")
    wait_for(
        lambda: value_of(service, "DB_PASSWORD") == TRIPWIRE_2 and value_of(service, "NEW_KEY"),
        timeout=2.0,
        what="the swapped version",
    )


def test_sidecar_pushes_again_after_the_service_restarts(
    service: ServiceProcess, home: Path, sidecars: list[Sidecar]
) -> None:
    source = home / "app.env"
    source.write_text("TOKEN=abc\n")
    sidecars.append(Sidecar(home, "--source", f"dotenv:{source}"))
    wait_for(lambda: value_of(service, "TOKEN") == "abc", timeout=30, what="first push")
    assert service.stop() == 0
    service.start()  # a new process: empty store, new boot id
    wait_for(lambda: value_of(service, "TOKEN") == "abc", timeout=30, what="the re-push")
    assert "service restarted; pushing again" in sidecars[0].log()


def test_age_vault_made_with_the_age_cli_is_pushed_and_read_back(
    service: ServiceProcess, home: Path, sidecars: list[Sidecar]
) -> None:
    identity = home / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    public = next(
        line.split(": ", 1)[1]
        for line in identity.read_text().splitlines()
        if line.startswith("# public key: ")
    )
    plaintext = f'GITHUB_TOKEN="{TRIPWIRE}"\n# comment\nREGION=eu\n'
    vault = home / "vault.age"
    subprocess.run(["age", "-r", public, "-o", str(vault)], input=plaintext.encode(), check=True)
    sidecars.append(Sidecar(home, "--source", f"age:{vault}", "--identity", str(identity)))
    wait_for(lambda: value_of(service, "GITHUB_TOKEN") == TRIPWIRE, timeout=30, what="push")
    assert value_of(service, "REGION") == "eu"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (f"OK=1\n{TRIPWIRE}\n", "line 2: expected KEY=value"),
        (f"bad-name={TRIPWIRE}\n", "line 1: invalid key"),
        (None, "file not found"),
    ],
)
def test_bad_source_exits_non_zero_with_a_clear_message(
    home: Path, content: str | None, fragment: str
) -> None:
    source = home / "bad.env"
    if content is not None:
        source.write_text(content)
    result = run_patina(
        "sidecar",
        "--source",
        f"dotenv:{source}",
        "--admin-socket",
        str(home / "nowhere.sock"),
        env={"PATINA_HOME": str(home)},
    )
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert fragment in stderr
    assert TRIPWIRE not in stderr + result.stdout.decode()


def test_age_source_with_the_wrong_identity_exits_non_zero(home: Path) -> None:
    right, wrong = home / "right.txt", home / "wrong.txt"
    for path in (right, wrong):
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    public = next(
        line.split(": ", 1)[1]
        for line in right.read_text().splitlines()
        if line.startswith("# public key: ")
    )
    vault = home / "vault.age"
    subprocess.run(["age", "-r", public, "-o", str(vault)], input=b"A=1\n", check=True)
    result = run_patina(
        "sidecar", "--source", f"age:{vault}", "--identity", str(wrong), "--once",
        env={"PATINA_HOME": str(home)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "bad source" in result.stderr.decode()


def test_refused_pushes_keep_the_previous_set_serving(service: ServiceProcess, home: Path) -> None:
    source = home / "app.env"
    source.write_text("KEEP=kept\n")
    once = run_patina(
        "sidecar", "--source", f"dotenv:{source}", "--once", env={"PATINA_HOME": str(home)}
    )
    assert once.returncode == 0, once.stderr
    with uds_client(service.admin_socket) as admin:
        too_big = admin.put("/admin/secrets", json={"secrets": {"BIG": "x" * (1024 * 1024)}})
        malformed = admin.put("/admin/secrets", content=b'{"secrets": {"A": "1", "A": "2"}}')
        not_json = admin.put("/admin/secrets", content=b"KEEP=other")
    assert too_big.status_code == 413
    assert malformed.status_code == 400
    assert not_json.status_code == 400
    assert value_of(service, "KEEP") == "kept"
    check = run_patina("sidecar", "--source", f"dotenv:{source}", "--check",
                       env={"PATINA_HOME": str(home)})  # fmt: skip
    assert check.returncode == 0, check.stderr
    source.write_text("KEEP=kept\nMORE=1\n")
    stale = run_patina("sidecar", "--source", f"dotenv:{source}", "--check",
                       env={"PATINA_HOME": str(home)})  # fmt: skip
    assert stale.returncode == 1


def test_tcp_caller_outside_the_allowlist_is_denied_and_audited(
    service: ServiceProcess, home: Path
) -> None:
    source = home / "app.env"
    source.write_text(f"API_KEY={TRIPWIRE}\n")
    run_patina("sidecar", "--source", f"dotenv:{source}", "--once", env={"PATINA_HOME": str(home)})
    port = service.port  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {TCP_TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as tcp:
        denied = tcp.get("/secrets/API_KEY", headers=headers)
        listed = tcp.get("/secrets", headers=headers)
    assert denied.status_code == 403
    assert listed.json() == {"names": []}
    audit = home / "data" / "audit.jsonl"

    def denial_audited() -> bool:
        events = [json.loads(line) for line in audit.read_text().splitlines()]
        return any(
            e["event"] == "read" and e["outcome"] == "deny" and e["principal"] == "token:env"
            for e in events
        )

    wait_for(denial_audited, timeout=10, what="the denial in the audit log")
    run = run_patina("audit", "tail", "-n", "50", env={"PATINA_HOME": str(home)})
    assert '"outcome":"deny"' in run.stdout.decode()


def test_tripwires_appear_nowhere_the_service_or_sidecar_writes(
    service: ServiceProcess, home: Path, sidecars: list[Sidecar]
) -> None:
    source = home / "src" / "app.env"
    source.parent.mkdir()
    source.write_text(f"API_KEY={TRIPWIRE}\nDB={TRIPWIRE_2}\n")
    sidecars.append(Sidecar(home, "--source", f"dotenv:{source}"))
    wait_for(lambda: value_of(service, "API_KEY") == TRIPWIRE, timeout=30, what="push")
    bodies = []
    port = service.port  # type: ignore[attr-defined]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as tcp:
        auth = {"Authorization": f"Bearer {TCP_TOKEN}"}
        bodies.append(tcp.get("/secrets/API_KEY", headers=auth).text)
    with uds_client(service.admin_socket) as admin:
        dup = f'{{"secrets": {{"A": "{TRIPWIRE}", "A": "{TRIPWIRE}"}}}}'.encode()
        bodies.append(admin.put("/admin/secrets", content=dup).text)
        bodies.append(admin.put("/admin/secrets", content=dup[:-2]).text)
        bodies.append(admin.get("/admin/status").text)
    with service.client() as client:
        bodies.append(client.get(f"/secrets/{TRIPWIRE}").text)
        bodies.append(client.get("/metrics").text)
    # A bad edit of the source: logged by the sidecar without the line's text.
    source.write_text(f"API_KEY={TRIPWIRE}\n{TRIPWIRE_2}\n")
    wait_for(lambda: "keeping the last good set" in sidecars[0].log(), timeout=10, what="log")
    assert service.proc is not None
    cmdlines = [
        Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        for pid in (service.proc.pid, sidecars[0].proc.pid)
    ]
    sidecars[0].stop()
    assert service.stop() == 0
    written = [
        path.read_text(errors="replace")
        for path in home.rglob("*")
        if path.is_file() and path.parent != source.parent
    ]
    assert any("audit.jsonl" in str(p) for p in home.rglob("*"))
    for haystack in [*bodies, *cmdlines, *written]:
        assert TRIPWIRE not in haystack
        assert TRIPWIRE_2 not in haystack
