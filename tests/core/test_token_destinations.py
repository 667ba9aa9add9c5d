"""Where the CLI sends a bearer token: only over https, plain http only to loopback with
--insecure, and the local service's generated token only to this machine."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.client import Target, TargetError, check_url, open_client, resolve_target
from service.settings import Settings, load_settings
from tests.support.process import run_patina

LOCAL_TOKEN = "pt_tripwire-local-serve-token-6f2a"
ENV_TOKEN = "pt_tripwire-env-token-0b9d"
NAMED_TOKEN = "pt_tripwire-named-token-77c1"
HEALTH = b'{"status":"ok","version":"x","uptime_secs":1}'


class Recorder:
    """A plain HTTP server on loopback that answers /health and keeps every request head."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.heads: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.heads.append(head)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(HEALTH), HEALTH)
                )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home whose local service generated a token (run/serve.token)."""
    run = tmp_path / "home" / "run"
    run.mkdir(parents=True, mode=0o700)
    (run / "serve.token").write_text(LOCAL_TOKEN + "\n")
    return tmp_path / "home"


@pytest.mark.parametrize("env_token", [None, ENV_TOKEN], ids=["local-token", "env-token"])
def test_plain_http_is_refused_before_anything_is_sent(
    recorder: Recorder, home: Path, env_token: str | None
) -> None:
    env = {"PATINA_HOME": str(home)}
    if env_token:
        env["PATINA_SERVE_TOKEN"] = env_token
    result = run_patina("health", "--url", f"http://127.0.0.1:{recorder.port}", env=env)
    assert result.returncode == 2
    assert b"refusing plain http://127.0.0.1" in result.stderr
    assert b"--insecure" in result.stderr
    assert recorder.heads == []
    assert LOCAL_TOKEN.encode() not in result.stderr + result.stdout


def test_plain_http_to_loopback_with_insecure_is_the_explicit_exception(
    recorder: Recorder, home: Path
) -> None:
    url = f"http://127.0.0.1:{recorder.port}"
    result = run_patina("health", "--url", url, "--insecure", env={"PATINA_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert len(recorder.heads) == 1
    assert f"\r\nAuthorization: Bearer {LOCAL_TOKEN}\r\n".encode() in recorder.heads[0]


def test_insecure_does_not_allow_plain_http_off_loopback(home: Path) -> None:
    result = run_patina(
        "health", "--url", "http://203.0.113.7:50051", "--insecure", env={"PATINA_HOME": str(home)}
    )
    assert result.returncode == 2
    assert b"only to a loopback address" in result.stderr


def _settings(home: Path) -> Settings:
    return load_settings(home=home)


def test_the_local_token_goes_only_to_this_machine(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PATINA_SERVE_TOKEN", raising=False)
    settings = _settings(home)
    remote = resolve_target(settings, url="https://mother.example:50051")
    assert remote.token is None
    assert remote.note is not None
    assert "only to this machine" in remote.note
    assert LOCAL_TOKEN not in remote.note
    for local_url in ("https://localhost:50051", "https://127.0.0.1:1", "https://[::1]:1"):
        assert resolve_target(settings, url=local_url).token == LOCAL_TOKEN


def test_a_token_the_user_names_goes_where_the_user_sends_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(home)
    url = "https://mother.example:50051"
    assert resolve_target(settings, url=url, token=NAMED_TOKEN).token == NAMED_TOKEN
    monkeypatch.setenv("PATINA_SERVE_TOKEN", ENV_TOKEN)
    assert resolve_target(settings, url=url).token == ENV_TOKEN


@pytest.mark.parametrize(
    ("url", "insecure"),
    [
        ("http://mother.example:80", False),
        ("http://mother.example:80", True),
        ("http://127.0.0.1:80", False),
        ("ftp://127.0.0.1", True),
        ("https://", False),
    ],
)
def test_a_target_built_by_hand_cannot_carry_a_token_over_plain_http(
    url: str, insecure: bool
) -> None:
    with pytest.raises(TargetError):
        check_url(url, insecure=insecure)
    with pytest.raises(TargetError):
        open_client(Target(url=url, token=NAMED_TOKEN, insecure=insecure))
