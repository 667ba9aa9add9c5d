"""`patina health`: ask a running service whether it is up (exit 0) or not (exit 1)."""

from __future__ import annotations

import json

import httpx
import typer

from service.cli.common import (
    CaOption,
    ClientCertOption,
    ClientKeyOption,
    ConfigOption,
    SocketOption,
    TokenOption,
    UrlOption,
    settings_or_exit,
)
from service.client import open_client, resolve_target


def register(app: typer.Typer) -> None:
    @app.command("health")
    def health(
        config: ConfigOption = None,
        socket: SocketOption = None,
        url: UrlOption = None,
        token: TokenOption = None,
        ca: CaOption = None,
        cert: ClientCertOption = None,
        key: ClientKeyOption = None,
    ) -> None:
        """Check /health over the Unix socket (default) or --url."""
        settings = settings_or_exit(config)
        target = resolve_target(
            settings, socket=socket, url=url, token=token, ca=ca, cert=cert, key=key
        )
        try:
            with open_client(target, timeout=5.0) as client:
                response = client.get("/health")
        except (httpx.HTTPError, OSError) as exc:
            typer.echo(f"patina: {target.describe()} is not answering: {exc}", err=True)
            raise typer.Exit(1) from None
        if response.status_code != 200:
            typer.echo(f"patina: health answered {response.status_code}: {response.text}", err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(response.json()))
