"""The Unix-socket rules, on real sockets with the real `patina serve` process."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import pytest

from service.client import Target, open_client
from tests.support.process import ServiceProcess, running_service, uds_client


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_curl_over_the_socket_reaches_health(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        out = subprocess.run(
            ["curl", "-sS", "--unix-socket", str(service.socket), "http://localhost/health"],
            capture_output=True,
            check=True,
            timeout=10,
        )
        assert b'"status":"ok"' in out.stdout


def test_run_dir_is_0700_and_sockets_0600(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        assert _mode(service.run_dir) == 0o700
        assert _mode(service.socket) == 0o600
        assert _mode(service.admin_socket) == 0o600


def test_configured_socket_mode_is_applied_for_bind_mounts(short_tmp: Path) -> None:
    env = {"PATINA_SOCKET_MODE": "0660", "PATINA_RUN_DIR_MODE": "0750"}
    with running_service(home=short_tmp, env=env) as service:
        assert _mode(service.socket) == 0o660
        assert _mode(service.admin_socket) == 0o600


def test_world_writable_run_dir_refuses_to_start(short_tmp: Path) -> None:
    run = short_tmp / "run"
    run.mkdir()
    run.chmod(0o777)
    service = ServiceProcess(home=short_tmp).start(wait=False)
    assert service.proc is not None
    assert service.proc.wait(20) == 1
    log = service.log()
    assert f"run dir {run} has mode 0777" in log
    assert f"chmod 700 {run}" in log
    assert not (run / "serve.sock").exists()


def test_symlink_at_the_socket_path_is_left_alone(short_tmp: Path) -> None:
    run = short_tmp / "run"
    run.mkdir(mode=0o700)
    target = short_tmp / "precious.txt"
    target.write_text("keep me")
    (run / "serve.sock").symlink_to(target)
    service = ServiceProcess(home=short_tmp).start(wait=False)
    assert service.proc is not None
    assert service.proc.wait(20) == 1
    assert service.wait_for_log("is a symlink; refusing")
    assert (run / "serve.sock").is_symlink()
    assert target.read_text() == "keep me"


def test_regular_file_at_the_socket_path_is_left_alone(short_tmp: Path) -> None:
    run = short_tmp / "run"
    run.mkdir(mode=0o700)
    (run / "serve.sock").write_text("not a socket")
    service = ServiceProcess(home=short_tmp).start(wait=False)
    assert service.proc is not None
    assert service.proc.wait(20) == 1
    assert service.wait_for_log("exists and is not a socket")
    assert (run / "serve.sock").read_text() == "not a socket"


def test_second_server_on_the_same_socket_refuses(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as first:
        second = ServiceProcess(
            home=short_tmp / "second",
            env={
                "PATINA_SOCKET_PATH": str(first.socket),
                "PATINA_ADMIN_SOCKET_PATH": str(short_tmp / "second-admin.sock"),
            },
        )
        (short_tmp / "second").mkdir()
        second.start(wait=False)
        assert second.proc is not None
        assert second.proc.wait(20) == 1
        assert second.wait_for_log("already running")
        # The first one is untouched and still serving.
        with first.client() as c:
            assert c.get("/health").status_code == 200


def test_stale_socket_from_a_killed_server_is_replaced(short_tmp: Path) -> None:
    first = ServiceProcess(home=short_tmp).start()
    first.stop(signal.SIGKILL)
    assert first.socket.exists()  # SIGKILL leaves the file behind
    with running_service(home=short_tmp) as second, second.client() as c:
        assert c.get("/health").status_code == 200
        assert second.wait_for_log("removing stale socket")


def test_sigterm_removes_the_sockets_and_exits_zero(short_tmp: Path) -> None:
    service = ServiceProcess(home=short_tmp).start()
    # An idle keep-alive connection must not hold the shutdown back.
    with service.client() as c:
        assert c.get("/health").status_code == 200
        assert service.stop(signal.SIGTERM) == 0
    assert not service.socket.exists()
    assert not service.admin_socket.exists()
    assert service.wait_for_log("stopped")


def test_sigint_stops_cleanly_too(short_tmp: Path) -> None:
    service = ServiceProcess(home=short_tmp).start()
    assert service.stop(signal.SIGINT) == 0
    assert not service.socket.exists()


def test_peer_outside_the_allowed_uids_gets_403_and_a_log_line(short_tmp: Path) -> None:
    # Allow only another uid: this test's own process becomes the stranger.
    with running_service(home=short_tmp, args=["--allow-uid", "54321"]) as service:
        with service.client() as c:
            response = c.get("/health")
        assert response.status_code == 403
        assert response.json() == {"error": f"peer uid {os.getuid()} is not allowed on this socket"}
        assert service.wait_for_log("socket peer refused")
        assert f"uid={os.getuid()}" in service.wait_for_log("socket peer refused")


def test_peer_credentials_reach_the_app_and_the_access_log(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        with service.client() as c:
            assert c.get("/metrics").status_code == 200
        log = service.wait_for_log("route=/metrics")
        assert f"principal=uid:{os.getuid()}" in log
        assert "route=/metrics" in log
        assert "transport=uds" in log


def test_admin_socket_serves_only_admin_routes(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service, uds_client(service.admin_socket) as admin:
        assert admin.get("/health").status_code == 200
        # Public-API routes do not exist on the admin socket.
        with service.client() as public:
            public_paths = set(public.get("/openapi.json").json()["paths"])
        admin_paths = set(admin.get("/openapi.json").json()["paths"])
        assert not any(p.startswith("/admin") for p in public_paths)
        assert "/api/scry" not in admin_paths


def test_connecting_raw_and_closing_does_not_disturb_the_server(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service:
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(service.socket))
            s.close()
        with service.client() as c:
            assert c.get("/health").status_code == 200


def test_sigterm_drains_an_in_flight_request_before_exiting(short_tmp: Path) -> None:
    service = ServiceProcess(home=short_tmp).start()
    body = b'{"secrets": {"DRAIN_TEST": "x"}, "ttl_secs": 60}'
    raw = socket.socket(socket.AF_UNIX)
    raw.settimeout(15)
    raw.connect(str(service.socket))
    raw.sendall(
        b"POST /secrets/cache HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
    )
    time.sleep(0.3)
    assert service.proc is not None
    service.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert service.proc.poll() is None, "exited with a request still in flight"
    # A new connection is no longer accepted while draining...
    with socket.socket(socket.AF_UNIX) as late, pytest.raises(ConnectionRefusedError):
        late.connect(str(service.socket))
    # ...but the request in flight completes.
    raw.sendall(body[10:])
    answer = raw.recv(65536)
    raw.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert service.proc.wait(20) == 0
    assert not service.socket.exists()


def test_the_socket_client_reaches_the_service_without_loading_a_ca_bundle(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain HTTP over the socket: loading certificate authorities there is start-up time
    # every CLI command and `patina mcp` would pay for nothing.
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a CA bundle was loaded for a Unix-socket client")

    with running_service(home=short_tmp) as service:
        monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", refuse)
        monkeypatch.setattr(ssl.SSLContext, "load_default_certs", refuse)
        with open_client(Target(socket=service.socket)) as client:
            assert client.get("/health").json()["status"] == "ok"
