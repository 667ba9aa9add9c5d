"""`patina tls dev-certs DIR`: a dev CA plus server and client certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.devcerts import write_dev_certs

tls_app = typer.Typer(help="TLS helpers.", no_args_is_help=True)


@tls_app.command("dev-certs")
def dev_certs(
    directory: Annotated[Path, typer.Argument(help="Where to write the PEM files.")],
    host: Annotated[
        list[str] | None, typer.Option("--host", help="Server name or IP (repeat).")
    ] = None,
) -> None:
    """Write a dev CA, a server certificate for localhost and 127.0.0.1, and a client one."""
    files = write_dev_certs(directory, hosts=host)
    typer.echo(f"wrote dev certificates to {directory}:")
    for label, path in (
        ("CA", files.ca),
        ("server cert", files.server),
        ("server key", files.server_key),
        ("client cert", files.client),
        ("client key", files.client_key),
    ):
        typer.echo(f"  {label:12} {path}")
    typer.echo(
        f"try: patina serve --tcp 127.0.0.1:50051 --tls-cert {files.server} "
        f"--tls-key {files.server_key} [--tls-client-ca {files.ca}]"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(tls_app, name="tls")
