"""TLS TCP: tokens, mutual TLS, and the refusals around plain TCP."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import pytest

from service.client import ssl_context
from service.devcerts import DevCertFiles
from service.transport.tcp import server_ssl_context
from tests.support.process import ServiceProcess, free_port, running_service

TRIPWIRE_TOKEN = "pt_tripwire-token-9f1c3e77"


def _tls_args(certs: DevCertFiles, port: int, *, mutual: bool = False) -> list[str]:
    args = [
        "--tcp",
        f"127.0.0.1:{port}",
        "--tls-cert",
        str(certs.server),
        "--tls-key",
        str(certs.server_key),
    ]
    return args + (["--tls-client-ca", str(certs.ca)] if mutual else [])


def _client(
    port: int, certs: DevCertFiles, *, token: str | None, client_cert: bool = False
) -> httpx.Client:
    ctx = ssl_context(
        certs.ca, certs.client if client_cert else None, certs.client_key if client_cert else None
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=f"https://localhost:{port}", verify=ctx, headers=headers, timeout=10
    )


def test_tls_with_the_dev_ca_and_token(short_tmp: Path, dev_certs: DevCertFiles) -> None:
    port = free_port()
    env = {"PATINA_SERVE_TOKEN": TRIPWIRE_TOKEN}
    with running_service(_tls_args(dev_certs, port), env=env, home=short_tmp) as service:
        with _client(port, dev_certs, token=TRIPWIRE_TOKEN) as c:
            assert c.get("/health").json()["status"] == "ok"
            metrics = c.get("/metrics")
            assert metrics.status_code == 200
            assert 'transport="tcp"' in metrics.text
        with _client(port, dev_certs, token=None) as anonymous:
            missing = anonymous.get("/metrics")
            assert missing.status_code == 401
            assert missing.json() == {"error": "missing or invalid bearer token"}
            assert missing.headers["www-authenticate"] == "Bearer"
        with _client(port, dev_certs, token="pt_wrong") as wrong:
            assert wrong.get("/metrics").status_code == 401
        assert service.wait_for_log("principal=token:env")
    # The token never reaches the log, nor any file the service wrote.
    assert TRIPWIRE_TOKEN not in service.log()
    for path in short_tmp.rglob("*"):
        if path.is_file():
            assert TRIPWIRE_TOKEN.encode() not in path.read_bytes(), path


def test_generated_token_is_written_0600_and_only_its_path_logged(
    short_tmp: Path, dev_certs: DevCertFiles
) -> None:
    port = free_port()
    with running_service(_tls_args(dev_certs, port), home=short_tmp) as service:
        token_file = service.run_dir / "serve.token"
        token = token_file.read_text().strip()
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert str(token_file) in service.log()
        assert token not in service.log()
        with _client(port, dev_certs, token=token) as c:
            assert c.get("/metrics").status_code == 200


def test_mutual_tls_requires_a_client_certificate(short_tmp: Path, dev_certs: DevCertFiles) -> None:
    port = free_port()
    env = {"PATINA_SERVE_TOKEN": TRIPWIRE_TOKEN}
    with running_service(_tls_args(dev_certs, port, mutual=True), env=env, home=short_tmp) as svc:
        with _client(port, dev_certs, token=TRIPWIRE_TOKEN, client_cert=True) as c:
            assert c.get("/metrics").status_code == 200
        assert svc.wait_for_log('principal="token:env/cert:CN=patina-client,O=patina-serve dev"')
        with (
            _client(port, dev_certs, token=TRIPWIRE_TOKEN) as no_cert,
            pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        ):
            no_cert.get("/health")


def test_plain_http_to_the_tls_port_gets_no_http_answer(
    short_tmp: Path, dev_certs: DevCertFiles
) -> None:
    port = free_port()
    with running_service(_tls_args(dev_certs, port), home=short_tmp) as service:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            try:
                while chunk := raw.recv(4096):
                    answer += chunk
            except (ConnectionResetError, TimeoutError):
                pass
        assert not answer.startswith(b"HTTP/")
        with service.client() as c:
            assert c.get("/health").status_code == 200


def test_server_context_requires_tls_1_2_or_later(dev_certs: DevCertFiles) -> None:
    ctx = server_ssl_context(dev_certs.server, dev_certs.server_key, dev_certs.ca)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_plain_tcp_off_loopback_refuses_to_start(short_tmp: Path) -> None:
    service = ServiceProcess(home=short_tmp, args=["--tcp", "0.0.0.0:50051", "--insecure"])
    service.start(wait=False)
    assert service.proc is not None
    assert service.proc.wait(20) == 1
    assert service.wait_for_log("refusing plain TCP on non-loopback address 0.0.0.0")


def test_tcp_without_tls_or_insecure_refuses_to_start(short_tmp: Path) -> None:
    service = ServiceProcess(home=short_tmp, args=["--tcp", "127.0.0.1:50051"])
    service.start(wait=False)
    assert service.proc is not None
    assert service.proc.wait(20) == 1
    assert service.wait_for_log("needs --tls-cert and --tls-key")


def test_insecure_loopback_works_with_a_loud_warning(short_tmp: Path) -> None:
    port = free_port()
    env = {"PATINA_SERVE_TOKEN": TRIPWIRE_TOKEN}
    args = ["--tcp", f"127.0.0.1:{port}", "--insecure"]
    with running_service(args, env=env, home=short_tmp) as service:
        headers = {"Authorization": f"Bearer {TRIPWIRE_TOKEN}"}
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)
        assert response.status_code == 200
        assert service.wait_for_log("INSECURE: serving plain HTTP")


def test_metrics_port_serves_only_metrics(short_tmp: Path) -> None:
    port = free_port()
    with running_service(["--metrics", f"127.0.0.1:{port}"], home=short_tmp):
        assert "http_requests_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
        other = httpx.get(f"http://127.0.0.1:{port}/health")
        assert other.status_code == 404
        assert other.json() == {"error": "not found"}
