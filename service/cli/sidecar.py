"""`patina sidecar`: push secrets from a source into the service's memory, and keep them there.

    patina sidecar --source age:PATH --identity FILE
    patina sidecar --source dotenv:PATH
    patina sidecar --source dir:PATH          (a mounted Kubernetes Secret, /run/secrets, ...)
    patina sidecar --source patina:DIR --identity FILE   (a Patina vault directory)

Only paths appear on the command line, never a value.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import httpx
import typer

from service.agent.sidecar import PushError, Sidecar, check, push_once
from service.agent.sources import SidecarSource, SourceError
from service.cli.common import ConfigOption, fail, settings_or_exit
from service.logs import configure_logging


def register(app: typer.Typer) -> None:
    @app.command("sidecar")
    def sidecar(
        source: Annotated[
            str,
            typer.Option(help="age:PATH, dotenv:PATH, dir:PATH or patina:DIR.", show_default=False),
        ],
        identity: Annotated[
            Path | None, typer.Option(help="age identity file (for age: and patina: sources).")
        ] = None,
        admin_socket: Annotated[
            Path | None, typer.Option(help="The service's admin socket (run/admin.sock).")
        ] = None,
        config: ConfigOption = None,
        once: Annotated[bool, typer.Option("--once", help="Push once and exit.")] = False,
        check_only: Annotated[
            bool,
            typer.Option(
                "--check", help="Probe: source readable and the service holds its set (exit 0)."
            ),
        ] = False,
        poll_secs: Annotated[float, typer.Option(help="Source polling interval.")] = 0.25,
        status_secs: Annotated[
            float, typer.Option(help="How often to look for a service restart.")
        ] = 1.0,
        log_format: Annotated[str | None, typer.Option(help="text or json.")] = None,
        log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
    ) -> None:
        """Push secrets from a source to the service's admin socket, at start, on every change
        of the source and after every restart of the service."""
        settings = settings_or_exit(config, log_format=log_format, log_level=log_level)
        configure_logging(settings.log_format, settings.log_level)
        # httpx would log every status poll at INFO; our own lines say what matters.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        socket = admin_socket or settings.resolved_admin_socket_path
        try:
            parsed = SidecarSource.parse(source, identity=identity)
        except SourceError as exc:
            fail(str(exc))
        if check_only:
            try:
                typer.echo(check(parsed, socket, service_uid=settings.service_uid))
            except (SourceError, PushError) as exc:
                fail(f"check failed: {exc}", code=1)
            except httpx.HTTPError as exc:
                fail(f"check failed: admin socket {socket}: {type(exc).__name__}", code=1)
            return
        if once:
            try:
                result = push_once(parsed, socket, service_uid=settings.service_uid)
            except SourceError as exc:
                fail(f"bad source: {exc}")
            except PushError as exc:
                fail(f"push refused: {exc}", code=1)
            except httpx.HTTPError as exc:
                fail(f"admin socket {socket}: {type(exc).__name__}", code=1)
            typer.echo(f"pushed {result['count']} secrets (generation {result['generation']})")
            return
        runner = Sidecar(
            parsed,
            socket,
            poll_secs=poll_secs,
            status_secs=status_secs,
            service_uid=settings.service_uid,
        )
        try:
            count = runner.load_initial()
        except SourceError as exc:
            fail(f"bad source: {exc}")
        typer.echo(f"sidecar: {count} secrets from {parsed}, pushing to {socket}", err=True)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            runner.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        runner.run()
