"""`patina token create NAME --scope S...`: a new bearer token for TCP callers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import ConfigOption, fail, settings_or_exit
from service.fileio import write_private
from service.tokens import append_to_tokens_file, new_token

token_app = typer.Typer(help="Manage bearer tokens for TCP callers.", no_args_is_help=True)


@token_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Token name (shown in logs and audit).")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Scope to grant (repeat).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="File for the token (default run/tokens/NAME.token).")
    ] = None,
    tokens_file: Annotated[
        Path | None, typer.Option(help="Tokens file to add the hash to (default run/tokens.toml).")
    ] = None,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print the token instead.")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a token: its hash goes to the tokens file, the token to a 0600 file."""
    settings = settings_or_exit(config)
    scopes = scope or ["scry"]
    tokens_path = tokens_file or settings.tokens_file or settings.resolved_run_dir / "tokens.toml"
    token = new_token()
    try:
        append_to_tokens_file(tokens_path, name, token, scopes)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    if stdout:
        typer.echo(token)
        return
    out_path = out or settings.resolved_run_dir / "tokens" / f"{name}.token"
    write_private(out_path, (token + "\n").encode())
    typer.echo(f"token {name!r} (scopes: {', '.join(scopes)}) written to {out_path}")
    typer.echo(f"its hash was added to {tokens_path}; serve with --tokens-file {tokens_path}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
