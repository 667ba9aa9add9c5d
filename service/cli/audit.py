"""`patina audit tail`: print the last audit events (JSON lines; never a secret value)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import ConfigOption, fail, settings_or_exit
from service.secrets.audit import tail_lines


def register(app: typer.Typer) -> None:
    audit = typer.Typer(help="The secrets audit log.", no_args_is_help=True)
    app.add_typer(audit, name="audit")

    @audit.command("tail")
    def tail(
        config: ConfigOption = None,
        lines: Annotated[int, typer.Option("-n", "--lines", help="How many events.")] = 20,
        follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
        file: Annotated[
            Path | None, typer.Option("--file", help="Audit file (data_dir/audit.jsonl).")
        ] = None,
    ) -> None:
        """Print the last audit events, one JSON object per line."""
        settings = settings_or_exit(config)
        path = file or settings.secrets.audit_file or settings.resolved_data_dir / "audit.jsonl"
        if not path.exists():
            fail(f"no audit log at {path}", code=1)
        for line in tail_lines(path, lines):
            typer.echo(line)
        if follow:
            _follow(path)


def _follow(path: Path) -> None:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        try:
            while True:
                line = fh.readline()
                if line:
                    typer.echo(line.decode(errors="replace").rstrip("\n"))
                else:
                    time.sleep(0.25)
        except KeyboardInterrupt:
            return
