"""TCP listeners: TLS by default; plain only on loopback with an explicit --insecure."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from pathlib import Path

from service.errors import StartupError
from service.settings import HostPort, Settings

log = logging.getLogger("patina.transport")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tcp_policy(settings: Settings) -> None:
    """Refuse unsafe TCP settings; warn loudly about the merely risky ones."""
    if settings.tcp is None:
        return
    host = settings.tcp.host
    has_tls = settings.tls_cert is not None or settings.tls_key is not None
    if has_tls and (settings.tls_cert is None or settings.tls_key is None):
        raise StartupError("TLS needs both --tls-cert and --tls-key")
    if settings.tls_client_ca is not None and not has_tls:
        raise StartupError("--tls-client-ca needs --tls-cert and --tls-key")
    if not has_tls:
        if not settings.insecure:
            raise StartupError(
                f"TCP on {settings.tcp} needs --tls-cert and --tls-key "
                "(plain TCP is allowed only on loopback with --insecure)"
            )
        if not is_loopback(host):
            raise StartupError(
                f"refusing plain TCP on non-loopback address {host}: use TLS "
                "(--insecure is accepted only on 127.0.0.1, ::1 or localhost)"
            )
        log.warning(
            "INSECURE: serving plain HTTP on %s; bearer tokens cross it unencrypted",
            settings.tcp,
        )
    if not is_loopback(host):
        log.warning("TCP listener %s is reachable from other machines", settings.tcp)


def server_ssl_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            ctx.load_verify_locations(cafile=str(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load TLS files: {exc}") from None
    return ctx


def bind_tcp(address: HostPort) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {address}: {exc.strerror}") from None
    return sock
