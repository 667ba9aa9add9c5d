"""`patina mcp`: the MCP server over stdio for an agent to spawn, and `patina mcp config`,
which prints or merges an agent's configuration for it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import (
    ConfigOption,
    TargetOptions,
    fail,
    settings_or_exit,
    with_target_options,
)

mcp_app = typer.Typer(
    help="With no command: serve MCP over stdin/stdout for an agent, answering from the "
    "running service. `config`: print or merge an agent's configuration for it.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(mcp_app, name="mcp")


@mcp_app.callback()
@with_target_options
def serve(ctx: typer.Context, config: ConfigOption = None, *, target: TargetOptions) -> None:
    """Serve MCP over stdin/stdout, answering from the running service (its Unix socket,
    or --url with --token-file). Ends when stdin closes or on SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    import anyio

    from service.mcp.stdio import serve_stdio

    settings = settings_or_exit(config)
    endpoint = target.resolve(settings)
    anyio.run(serve_stdio, endpoint, settings.mcp)


AgentOption = Annotated[
    str,
    typer.Option(
        "--agent",
        help="claude, codex, cursor, gemini or vscode.",
        show_default=False,
    ),
]


@mcp_app.command("config")
def config_cmd(
    agent: AgentOption,
    write: Annotated[
        bool, typer.Option("--write", help="Merge into the agent's file (a backup is kept).")
    ] = False,
    path: Annotated[
        Path | None,
        typer.Option("--path", help="The agent's configuration file (default: its usual one)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the agent's MCP configuration for `patina mcp` (or merge it with --write)."""
    from service.mcp.agent_config import AGENTS, ConfigError, merge_into, snippet

    if agent not in AGENTS:
        fail(f"unknown agent {agent!r}; choose one of: {', '.join(AGENTS)}")
    spec = AGENTS[agent]
    command = _patina_command(config)
    if not write:
        typer.echo(snippet(spec, command), nl=False)
        return
    destination = path or spec.default_path(Path.cwd(), Path.home())
    try:
        backup = merge_into(spec, destination, command)
    except ConfigError as exc:
        fail(str(exc))
    typer.echo(f"patina: wrote the patina server into {destination}", err=True)
    if backup is not None:
        typer.echo(f"patina: the previous file is kept as {backup}", err=True)


def _patina_command(config: Path | None) -> list[str]:
    """How the agent starts the server: this `patina`, with the same --config if given."""
    import shutil
    import sys

    found = shutil.which("patina")
    program = found or str(Path(sys.executable).with_name("patina"))
    args = [program, "mcp"]
    if config is not None:
        args += ["--config", str(config.resolve())]
    return args
