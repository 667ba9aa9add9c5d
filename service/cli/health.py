"""`patina health`: ask a running service whether it is up (exit 0) or not (exit 1)."""

from __future__ import annotations

import json

import httpx
import typer

from service.cli.common import ConfigOption, TargetOptions, settings_or_exit, with_target_options
from service.client import open_client


def register(app: typer.Typer) -> None:
    @app.command("health")
    @with_target_options
    def health(config: ConfigOption = None, *, target: TargetOptions) -> None:
        """Check /health over the Unix socket (default) or --url."""
        endpoint = target.resolve(settings_or_exit(config))
        try:
            with open_client(endpoint, timeout=5.0) as client:
                response = client.get("/health")
        except (httpx.HTTPError, OSError) as exc:
            typer.echo(f"patina: {endpoint.describe()} is not answering: {exc}", err=True)
            raise typer.Exit(1) from None
        if response.status_code != 200:
            typer.echo(f"patina: health answered {response.status_code}: {response.text}", err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(response.json()))
