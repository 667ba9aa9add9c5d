"""Helpers shared by CLI commands: settings loading with clean errors, client options."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from service.settings import Settings, SettingsError, load_settings

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file.", show_default=False)
]
SocketOption = Annotated[
    Path | None, typer.Option("--socket", help="Unix socket of the service.", show_default=False)
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="https://host:port of a remote service.", show_default=False),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Bearer token for --url (default: PATINA_SERVE_TOKEN, then run/serve.token).",
        show_default=False,
    ),
]
CaOption = Annotated[
    Path | None, typer.Option("--ca", help="CA certificate to verify --url.", show_default=False)
]
ClientCertOption = Annotated[
    Path | None, typer.Option("--cert", help="Client certificate (mutual TLS).")
]
ClientKeyOption = Annotated[Path | None, typer.Option("--key", help="Client key (mutual TLS).")]


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"patina: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit(config: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; a bad setting prints its name and exits 2."""
    try:
        return load_settings(config, **overrides)
    except SettingsError as exc:
        fail(str(exc))


def is_tty() -> bool:
    return sys.stdout.isatty()
