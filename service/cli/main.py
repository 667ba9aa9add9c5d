"""Entry point of the `patina` command: builds the typer app from the command modules."""

from __future__ import annotations

import sys

import typer

HELP = "patina-serve: project search and an agent-safe secrets broker."


def new_app() -> typer.Typer:
    """An empty `patina` command, for the modules to add theirs to."""
    return typer.Typer(
        name="patina",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def build_app() -> typer.Typer:
    """The whole `patina` command."""
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

    app = new_app()

    @app.callback()
    def _root() -> None:
        """patina-serve: project search and an agent-safe secrets broker."""

    # Each module adds its commands; one line per module keeps this the index of the CLI.
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
    return app


def main() -> None:
    if sys.argv[1:2] == ["mcp"]:
        # An agent spawns `patina mcp` for every session, so its start-up counts: only its
        # own module is loaded (the others bring numpy, rich and the vault with them), and
        # the SDK and httpx without the parts it never uses (first, before any import).
        from service.mcp.lean_start import skip_unused_imports

        skip_unused_imports()
        from service.cli import mcp_cmd

        app = new_app()
        mcp_cmd.register(app)
    else:
        app = build_app()
    # Imported after the route is chosen: it brings httpx with it.
    from service.socket_peer import WrongPeer

    try:
        app()
    except WrongPeer as exc:
        # Whichever command met it: a clear refusal, never a traceback or a retry elsewhere.
        typer.echo(f"patina: {exc}", err=True)
        raise SystemExit(1) from None
