"""Run every listener of one service on one event loop, sharing one Resources.

uvicorn gives one Config one ssl setting for all its sockets, so each listener gets its own
uvicorn.Server. Each Server would also install its own SIGTERM handler (replacing the
previous one, and re-raising the signal after shutdown, which turns a clean stop into exit
-15); instead the runner installs one handler that stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.types import ASGIApp

from service.app import create_admin_app, create_app, create_metrics_app
from service.bootstrap import open_resources
from service.resources import Resources
from service.settings import Settings
from service.tokens import build_token_store
from service.transport.connection import Transport
from service.transport.protocol import ListenerPolicy, protocol_for
from service.transport.tcp import bind_tcp, check_tcp_policy, is_loopback, server_ssl_context
from service.transport.uds import BoundSocket, bind_unix_socket, ensure_run_dir, remove_socket

log = logging.getLogger("patina")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals are handled once, by the runner, for every server.
        yield


@dataclass
class Listener:
    name: str
    app: ASGIApp
    sock: socket.socket
    policy: ListenerPolicy
    ssl_context: ssl.SSLContext | None = None
    unix: BoundSocket | None = None
    where: str = ""


@dataclass
class RunningService:
    """Handle given to `on_ready`: lets tests and the CLI stop the service."""

    resources: Resources
    servers: list[_Server] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)

    def stop(self, force: bool = False) -> None:
        for server in self.servers:
            server.should_exit = True
            if force:
                server.force_exit = True


def prepare(settings: Settings) -> None:
    """Checks that must pass before anything is bound (refuse to start otherwise)."""
    check_tcp_policy(settings)
    ensure_run_dir(settings.resolved_run_dir, max_mode=settings.run_dir_mode)
    for path in (settings.socket_path, settings.admin_socket_path):
        if path is not None and path.parent != settings.resolved_run_dir:
            ensure_run_dir(path.parent, max_mode=settings.run_dir_mode)


def _bind_listeners(settings: Settings, resources: Resources, out: list[Listener]) -> None:
    """Bind every configured listener into `out` (filled as it goes, so a failure part-way
    still lets the caller close and remove what was bound)."""

    def policy(kind: Transport, uids: frozenset[int] = frozenset()) -> ListenerPolicy:
        return ListenerPolicy(
            kind,
            allowed_uids=uids,
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout_secs,
            max_connections=settings.max_connections,
        )

    public_app = create_app(resources)

    uds = bind_unix_socket(
        settings.resolved_socket_path, mode=settings.socket_mode, group=settings.socket_group
    )
    uds_policy = policy("uds", settings.peer_uids)
    out.append(Listener("public", public_app, uds.sock, uds_policy, unix=uds, where=str(uds.path)))

    if settings.admin_enabled:
        admin = bind_unix_socket(
            settings.resolved_admin_socket_path,
            mode=settings.admin_socket_mode,
            group=settings.socket_group,
        )
        admin_policy = policy("admin", settings.admin_peer_uids)
        out.append(
            Listener(
                "admin",
                create_admin_app(resources),
                admin.sock,
                admin_policy,
                unix=admin,
                where=str(admin.path),
            )
        )

    if settings.tcp is not None:
        ctx = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            ctx = server_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        sock = bind_tcp(settings.tcp)
        scheme = "https" if ctx else "http"
        out.append(
            Listener(
                "tcp", public_app, sock, policy("tcp"), ctx, where=f"{scheme}://{settings.tcp}"
            )
        )

    if settings.metrics_listen is not None:
        if not is_loopback(settings.metrics_listen.host):
            log.warning("metrics port %s is reachable from other machines", settings.metrics_listen)
        sock = bind_tcp(settings.metrics_listen)
        out.append(
            Listener(
                "metrics",
                create_metrics_app(resources),
                sock,
                policy("metrics"),
                where=f"http://{settings.metrics_listen}/metrics",
            )
        )


def _server_for(listener: Listener, settings: Settings) -> _Server:
    config = uvicorn.Config(
        listener.app,
        http=protocol_for(listener.policy),
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        ws="none",
        timeout_keep_alive=int(max(1, settings.keepalive_timeout_secs)),
        timeout_graceful_shutdown=int(settings.shutdown_grace_secs),
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    config.load()
    # Our own context: TLS 1.2 minimum and, with a client CA, required client certificates.
    config.ssl = listener.ssl_context
    return _Server(config)


async def serve(
    settings: Settings, *, on_ready: Callable[[RunningService], None] | None = None
) -> None:
    """Run until SIGTERM/SIGINT (or `RunningService.stop`), then drain and clean up."""
    prepare(settings)
    tokens = build_token_store(settings)
    async with open_resources(settings, tokens=tokens) as resources:
        listeners: list[Listener] = []
        try:
            _bind_listeners(settings, resources, listeners)
            running = RunningService(resources, listeners=listeners)
            running.servers = [_server_for(lst, settings) for lst in listeners]
            _install_signal_handlers(running)
            tasks = [
                asyncio.create_task(server.serve(sockets=[lst.sock]))
                for server, lst in zip(running.servers, listeners, strict=True)
            ]
            await _wait_started(running, tasks)
            for lst in listeners:
                log.info("listening", extra={"fields": {"listener": lst.name, "at": lst.where}})
            if on_ready is not None:
                on_ready(running)
            await asyncio.gather(*tasks)
        finally:
            for lst in listeners:
                if lst.unix is not None:
                    remove_socket(lst.unix)
                lst.sock.close()
            _remove_signal_handlers()
    log.info("stopped")


async def _wait_started(running: RunningService, tasks: list[asyncio.Task[None]]) -> None:
    while not all(server.started for server in running.servers):
        done = [t for t in tasks if t.done()]
        if done:
            running.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            done[0].result()
            raise RuntimeError("a listener stopped during start-up")
        await asyncio.sleep(0.01)


def _install_signal_handlers(running: RunningService) -> None:
    loop = asyncio.get_running_loop()
    stopping = {"count": 0}

    def on_signal(signum: int) -> None:
        stopping["count"] += 1
        log.info("signal received, draining", extra={"fields": {"signal": signum}})
        running.stop(force=stopping["count"] > 1)

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, running.resources.sighup)


def _remove_signal_handlers() -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)
