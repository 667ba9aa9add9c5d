"""Entry point of the `patina` command: builds the typer app from the command modules."""

from __future__ import annotations

import typer

from service.cli import (
    audit,
    health,
    knowledge,
    mcp_cmd,
    openapi_cmd,
    secrets_cmd,
    serve,
    settings_cmd,
    sidecar,
    tls,
    tokens,
)
from service.socket_peer import WrongPeer

app = typer.Typer(
    name="patina",
    help="patina-serve: project search and an agent-safe secrets broker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """patina-serve: project search and an agent-safe secrets broker."""


# Each module adds its commands; one line per module keeps this file the index of the CLI.
for module in (
    serve,
    health,
    tokens,
    tls,
    openapi_cmd,
    settings_cmd,
    sidecar,
    audit,
    secrets_cmd,
    knowledge,
    mcp_cmd,
):
    module.register(app)


def main() -> None:
    try:
        app()
    except WrongPeer as exc:
        # Whichever command met it: a clear refusal, never a traceback or a retry elsewhere.
        typer.echo(f"patina: {exc}", err=True)
        raise SystemExit(1) from None
