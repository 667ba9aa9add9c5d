"""`patina serve`: run the service. Flags mirror settings; flags win over env and --config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvloop

from service.cli.common import ConfigOption, fail, settings_or_exit
from service.errors import StartupError
from service.logs import configure_logging
from service.settings import Settings


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        config: ConfigOption = None,
        home: Annotated[Path | None, typer.Option(help="Root of run/ and data/.")] = None,
        socket: Annotated[Path | None, typer.Option(help="Public Unix socket path.")] = None,
        admin_socket: Annotated[Path | None, typer.Option(help="Admin Unix socket path.")] = None,
        tcp: Annotated[str | None, typer.Option(help="Also listen on HOST:PORT (TLS).")] = None,
        tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM).")] = None,
        tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM).")] = None,
        tls_client_ca: Annotated[
            Path | None, typer.Option(help="Require client certificates from this CA.")
        ] = None,
        insecure: Annotated[
            bool | None, typer.Option("--insecure", help="Plain TCP, loopback only.")
        ] = None,
        tokens_file: Annotated[Path | None, typer.Option(help="Hashed, named tokens.")] = None,
        metrics: Annotated[
            str | None, typer.Option(help="Plain HOST:PORT serving only /metrics.")
        ] = None,
        allow_uid: Annotated[
            list[int] | None, typer.Option(help="Peer uid allowed on the socket (repeat).")
        ] = None,
        log_format: Annotated[str | None, typer.Option(help="text or json.")] = None,
        log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
    ) -> None:
        """Serve the API on the Unix socket (and TLS TCP, the admin socket, metrics)."""
        settings = settings_or_exit(
            config,
            home=home,
            socket_path=socket,
            admin_socket_path=admin_socket,
            tcp=tcp,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=tls_client_ca,
            insecure=insecure,
            tokens_file=tokens_file,
            metrics_listen=metrics,
            allowed_uids=allow_uid or None,
            log_format=log_format,
            log_level=log_level,
        )
        configure_logging(settings.log_format, settings.log_level)
        try:
            _run_forever(settings)
        except StartupError as exc:
            fail(f"refusing to start: {exc}", code=1)


def _run_forever(settings: Settings) -> None:
    # uvloop: the same asyncio API, a faster loop (the benchmark compares like with like).
    # The web stack is imported only by the command that serves.
    from service.transport.runner import serve as run_service

    uvloop.run(run_service(settings))
