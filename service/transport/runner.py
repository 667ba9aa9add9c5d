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
import os
import signal
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.types import ASGIApp

from service.app import create_admin_app, create_app, create_metrics_app
from service.bootstrap import open_resources
from service.remo.endpoints import AdminEndpoint, Endpoint, ProjectEndpoint
from service.remo.protocol import sniffing_for
from service.remo.wire import ADMIN_FRAME_CAP, PROJECT_FRAME_CAP
from service.resources import Resources
from service.settings import Settings
from service.tokens import build_token_store
from service.transport.connection import Transport
from service.transport.fd_budget import tcp_connection_cap
from service.transport.protocol import ListenerPolicy, protocol_for
from service.transport.tcp import bind_tcp, check_tcp_policy, is_loopback, server_ssl_context
from service.transport.tls_accept import TlsAcceptLoop
from service.transport.uds import BoundSocket, bind_unix_socket, ensure_run_dir, remove_socket

log = logging.getLogger("patina")


class _Server(uvicorn.Server):
    # The TLS listener accepts through its own loop (tls_accept.py), not uvicorn's server.
    tls: TlsAcceptLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals are handled once, by the runner, for every server.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.tls is None:
            await super().startup(sockets=sockets)
            return
        await super().startup(sockets=[])  # lifespan, state; no asyncio server of its own
        self.tls.start(self.config, self.server_state, self.lifespan.state)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.tls is not None:
            await self.tls.stop()
        await super().shutdown(sockets=sockets)


@dataclass
class Listener:
    name: str
    app: ASGIApp
    sock: socket.socket
    policy: ListenerPolicy
    ssl_context: ssl.SSLContext | None = None
    unix: BoundSocket | None = None
    where: str = ""
    # Set when the socket also speaks remo's NDJSON (chosen by the first byte).
    remo: Endpoint | None = None


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
    project_paths = [p.socket_path(settings.resolved_run_dir) for p in settings.remo.projects]
    for path in (settings.socket_path, settings.admin_socket_path, *project_paths):
        if path is not None and path.parent != settings.resolved_run_dir:
            ensure_run_dir(path.parent, max_mode=settings.run_dir_mode)


def _bind_listeners(settings: Settings, resources: Resources, out: list[Listener]) -> None:
    """Bind every configured listener into `out` (filled as it goes, so a failure part-way
    still lets the caller close and remove what was bound)."""

    # TCP listeners share what descriptors the Unix sockets can spare (fd_budget.py).
    tcp_listeners = (settings.tcp is not None) + (settings.metrics_listen is not None)
    tcp_cap = tcp_connection_cap(settings.max_connections, tcp_listeners=tcp_listeners)

    def policy(
        kind: Transport, uids: frozenset[int] = frozenset(), project: str | None = None
    ) -> ListenerPolicy:
        over_tcp = kind in ("tcp", "metrics")
        return ListenerPolicy(
            kind,
            allowed_uids=uids,
            project=project,
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout_secs,
            max_connections=tcp_cap if over_tcp else settings.max_connections,
            tls_handshake_timeout=settings.tls_handshake_timeout_secs,
            refuse_over_cap_at_accept=over_tcp,
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
                remo=AdminEndpoint(resources, ADMIN_FRAME_CAP) if settings.remo.enabled else None,
            )
        )

    for project in settings.remo.projects:
        # Each project's socket is its own principal (project:NAME) on the public app, and
        # speaks remo's NDJSON too; the same binding rules as the service's own sockets.
        bound = bind_unix_socket(
            project.socket_path(settings.resolved_run_dir),
            mode=project.mode,
            group=project.group,
        )
        uids = frozenset(project.allowed_uids or [os.getuid()])
        out.append(
            Listener(
                f"project:{project.name}",
                public_app,
                bound.sock,
                policy("project", uids, project.name),
                unix=bound,
                where=str(bound.path),
                remo=ProjectEndpoint(resources, project, PROJECT_FRAME_CAP),
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


def _server_for(listener: Listener, settings: Settings, resources: Resources) -> _Server:
    http = protocol_for(listener.policy)
    served: type[asyncio.Protocol] = http
    if listener.remo is not None:
        served = sniffing_for(listener.policy, http, listener.remo, resources)
    config = uvicorn.Config(
        listener.app,
        http=served,
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
    server = _Server(config)
    if listener.ssl_context is not None:
        # Counted from accept, with a short handshake timeout (tls_accept.py); uvicorn's
        # Config gets no ssl.
        server.tls = TlsAcceptLoop(listener.sock, listener.ssl_context, http)
    return server


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
            running.servers = [_server_for(lst, settings, resources) for lst in listeners]
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
