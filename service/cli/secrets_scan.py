"""`patina secrets check` (staged files, for a pre-commit hook) and `patina secrets audit`
(tracked files): secrets by shape and by exact value, with `--history` for every commit.

Exit codes fit a pre-commit hook: 0 clean, 1 findings, 2 the scan could not run. Findings
name file, line, rule and the secret's name or handle; values stay in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from service.agent.patina_source import patina_vaults
from service.agent.run import RunError, ServiceSource, ServiceUnreachable
from service.agent.scan import sources
from service.agent.scan.ignore import SecretsIgnore
from service.agent.scan.scanner import Finding, scan
from service.agent.scan.values import ValueFinder
from service.agent.vault import VaultError, default_vault_path, find_identity, open_vault
from service.cli.common import ConfigOption, SocketOption, fail, settings_or_exit
from service.client import Target, open_client
from service.settings import Settings

HistoryOption = Annotated[
    bool, typer.Option("--history", help="Also scan every line any commit added (all refs).")
]
ValuesOption = Annotated[
    bool,
    typer.Option(
        "--values/--no-values",
        help="Also look for every value the vaults and the running service hold, and their "
        "encodings (default on).",
    ),
]
IdentityOption = Annotated[
    Path | None, typer.Option("--identity", "-i", help="age identity for the vaults.")
]


def _note(message: str) -> None:
    typer.echo(f"patina: {message}", err=True)


def _labelled_values(
    settings: Settings, identity: Path | None, socket: Path | None
) -> Iterator[tuple[str, bytes]]:
    """Every value this user's vaults and service hold, labelled by name or handle. A
    source that cannot be opened is noted and skipped: the shapes are still scanned."""
    try:
        found = find_identity(identity, home=settings.home)
    except VaultError as exc:
        found = None
        _note(f"vaults not searched for their values: {exc}")
    if found is not None:
        for vault in patina_vaults(settings.home, Path.cwd(), found):
            try:
                document = vault.load() if vault.paths.vault.exists() else None
            except VaultError as exc:
                _note(f"{vault.paths.vault} not searched for its values: {exc}")
                continue
            for name, value in (document.values if document else {}).items():
                yield f"{name} ({vault.paths.scope} vault)", value.encode()
        own = default_vault_path(settings.home)
        if own.exists():
            try:
                for name, value in open_vault(own, found.text).items():
                    yield f"{name} (vault)", value.encode()
            except VaultError as exc:
                _note(f"{own} not searched for its values: {exc}")
    target = Target(
        socket=socket or settings.resolved_socket_path, service_uid=settings.service_uid
    )
    if not target.socket or not target.socket.exists():
        return
    with open_client(target, timeout=10.0) as client:
        service = ServiceSource(client, where=target.describe())
        try:
            service.probe()
            resolved = service.everything()
        except (ServiceUnreachable, RunError) as exc:
            _note(f"the service's values not searched: {exc}")
            return
        for ref, item in resolved.items():
            # The handle stands for the value in the finding, as in scrubbed output.
            yield f"{ref.key} (service, {item.placeholder})", item.value.encode()


def run_scan(
    *,
    staged_only: bool,
    history: bool,
    values: bool,
    config: Path | None,
    identity: Path | None,
    socket: Path | None,
) -> None:
    settings = settings_or_exit(config)
    try:
        root = sources.repository_root(Path.cwd())
    except sources.ScanSourceError as exc:
        fail(f"cannot scan: {exc}")
    finder = ValueFinder(_labelled_values(settings, identity, socket)) if values else None
    if finder is not None and finder.too_short:
        _note("too short to search for (under 4 bytes): " + ", ".join(finder.too_short))
    ignore = SecretsIgnore.load(root)
    try:
        texts = list(sources.staged(root) if staged_only else sources.tracked(root))
        findings: list[Finding] = scan(texts, values=finder, ignore=ignore)
        if history:
            findings += scan(sources.history(root), values=finder, ignore=ignore)
    except sources.ScanSourceError as exc:
        fail(f"cannot scan: {exc}")
    what = "staged files" if staged_only else "tracked files"
    if not findings:
        typer.echo(f"no secrets found in {len(texts)} {what}" + (" and history" if history else ""))
        return
    for finding in findings:
        typer.echo(str(finding))
    files = len({(f.commit, f.path) for f in findings})
    typer.echo(f"{len(findings)} secret(s) found in {files} file(s)", err=True)
    if staged_only:
        typer.echo("commit blocked: remove them, or list false alarms in .secretsignore", err=True)
    raise typer.Exit(1)


def _scan_command(*, staged_only: bool, summary: str) -> Callable[..., None]:
    """One command body for `check` and `audit`: they differ only in what they scan."""

    def command(
        history: HistoryOption = False,
        values: ValuesOption = True,
        config: ConfigOption = None,
        identity: IdentityOption = None,
        socket: SocketOption = None,
    ) -> None:
        run_scan(
            staged_only=staged_only,
            history=history,
            values=values,
            config=config,
            identity=identity,
            socket=socket,
        )

    command.__doc__ = summary  # typer shows it as the command's help
    return command


def register(app: typer.Typer) -> None:
    """Add `check` and `audit` to `patina secrets`."""
    app.command("check")(
        _scan_command(
            staged_only=True,
            summary="Scan the staged files (pre-commit hook): exit 0 clean, 1 findings, 2 error.",
        )
    )
    app.command("audit")(
        _scan_command(
            staged_only=False,
            summary="Scan every tracked file: exit 0 clean, 1 findings, 2 error.",
        )
    )
