"""Patina's secrets commands over Patina's own files: the status a bare `patina secrets`
shows, `add NAME [--env E] [--global]` into a Patina vault, and the project vault's
recipients (`add-recipient`, `remove-recipient`, `list-recipients`).

Which vault `add` writes (docs/compatibility.md): `--vault` (or PATINA_VAULT) names a
file, which keeps whichever format it has. Otherwise a Patina name (`github-token`),
`--env` or `--global` means Patina's vaults; so does a plain name when Patina's files exist
and this service's own vault (HOME/secrets/vault.age) does not. Anything else is today's
vault, exactly as before.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from service.agent.patina_format import PatinaPaths, find_project_root, valid_patina_name
from service.agent.patina_source import patina_vaults
from service.agent.patina_vault import PatinaVault
from service.agent.vault import (
    IdentitySource,
    VaultError,
    default_identity_path,
    default_vault_path,
    find_identity,
    identity_public_keys,
    new_identity_text,
)
from service.cli.common import ConfigOption, fail, settings_or_exit
from service.fileio import write_private
from service.secret_names import valid_name
from service.settings import Settings

IdentityOpt = Annotated[Path | None, typer.Option("--identity", "-i", show_default=False)]
GlobalOption = Annotated[
    bool, typer.Option("--global", help="Use the global vault (HOME) rather than the project's.")
]


@contextlib.contextmanager
def vault_errors() -> Iterator[None]:
    try:
        yield
    except VaultError as exc:
        fail(str(exc))


def wants_patina(
    settings: Settings, name: str, *, env: str | None, global_: bool, vault: Path | None
) -> bool:
    """Whether `add NAME` goes to Patina's vaults (see the module docstring)."""
    if vault is not None:
        return False
    if env is not None or global_ or not valid_name(name):
        return True
    if default_vault_path(settings.home).exists():
        return False
    return bool(patina_vaults(settings.home, Path.cwd(), None))


def target_vault(settings: Settings, *, global_: bool, identity: IdentitySource) -> PatinaVault:
    """Patina's choice: the project's vault when in a project (a `.patina` dir above the
    working directory) unless --global, else the global one."""
    root = None if global_ else find_project_root(Path.cwd(), home=settings.home)
    paths = PatinaPaths.project_at(root) if root else PatinaPaths.global_at(settings.home)
    return PatinaVault(paths, identity)


def identity_or_new(settings: Settings, explicit: Path | None) -> IdentitySource:
    """The identity, or a new one written 0600 to HOME/secrets/identity.txt (Patina makes
    one on first use too; it keeps it in the macOS keychain, we in that file)."""
    try:
        return find_identity(explicit, home=settings.home)
    except VaultError:
        if explicit is not None:
            raise
    path = default_identity_path(settings.home)
    text, public = new_identity_text()
    old_umask = os.umask(0o077)  # HOME and HOME/secrets, when made here, are private too
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    finally:
        os.umask(old_umask)
    write_private(path, text.encode())
    typer.echo(f"generated identity {path} (public key {public})", err=True)
    return IdentitySource(text, str(path))


def add_patina(
    settings: Settings,
    name: str,
    value: str,
    *,
    env: str | None,
    global_: bool,
    identity: Path | None,
) -> None:
    """`patina secrets add` into a Patina vault; prints what Patina prints (no value)."""
    if not valid_patina_name(name):
        fail(
            f"invalid secret name {name!r}: use lowercase letters, digits and hyphens "
            "(e.g. 'github-token')"
        )
    with vault_errors():
        vault = target_vault(
            settings, global_=global_, identity=identity_or_new(settings, identity)
        )
        env_name, created = vault.add(name, value, env=env)
    if created:
        typer.echo(f"created {vault.paths.scope} vault {vault.paths.vault}", err=True)
    typer.echo(f"added {name} -> ${env_name} ({vault.paths.scope} vault)", err=True)


def show_status(settings: Settings) -> None:
    """What a bare `patina secrets` shows: each Patina vault (names and env names from
    the registry, recipients; nothing decrypted), this service's vault, and the identity."""
    root = find_project_root(Path.cwd(), home=settings.home)
    scopes = [PatinaPaths.global_at(settings.home)]
    if root is not None:
        scopes.append(PatinaPaths.project_at(root))
    with vault_errors():
        for paths in scopes:
            status = PatinaVault(paths, None).status()
            state = "present" if status.exists else "none"
            typer.echo(f"{paths.scope} vault: {paths.vault} ({state})")
            typer.echo(f"  recipients: {len(status.recipients)}")
            typer.echo(f"  secrets: {len(status.registered)}")
            for name in sorted(status.registered):
                typer.echo(f"    {name} -> ${status.registered[name]}")
    own = default_vault_path(settings.home)
    if own.exists():
        typer.echo(f"patina-serve vault: {own} (see `patina secrets list`)")
    try:
        found = find_identity(None, home=settings.home)
        typer.echo(f"identity: {found.origin}")
        typer.echo(f"  public key: {identity_public_keys(found.text)[0]}")
    except VaultError:
        typer.echo("identity: none (created on the first `patina secrets add`)")


def recipients_vault(
    settings: Settings, *, global_: bool, identity: Path | None, need_identity: bool
) -> PatinaVault:
    """The vault the recipient commands act on: the project's (as Patina), or --global."""
    root = None if global_ else find_project_root(Path.cwd(), home=settings.home)
    if root is None and not global_:
        fail("not in a project with a .patina directory (use --global for the global vault)")
    paths = PatinaPaths.project_at(root) if root else PatinaPaths.global_at(settings.home)
    if not paths.vault.exists():
        fail(f"vault {paths.vault} not found; add a secret first")
    found = None
    if need_identity:
        with vault_errors():
            found = find_identity(identity, home=settings.home)
    return PatinaVault(paths, found)


def register(app: typer.Typer) -> None:
    """Add the recipient commands to `patina secrets`."""

    @app.command("list-recipients")
    def list_recipients(config: ConfigOption = None, global_: GlobalOption = False) -> None:
        """Public keys the project vault (or --global) is encrypted to."""
        settings = settings_or_exit(config)
        vault = recipients_vault(settings, global_=global_, identity=None, need_identity=False)
        with vault_errors():
            for key in vault.recipients():
                typer.echo(key)

    @app.command("add-recipient")
    def add_recipient(
        key: Annotated[str, typer.Argument(help="age1… public key.")],
        config: ConfigOption = None,
        global_: GlobalOption = False,
        identity: IdentityOpt = None,
    ) -> None:
        """Re-encrypt the project vault (or --global) to one more recipient."""
        settings = settings_or_exit(config)
        vault = recipients_vault(settings, global_=global_, identity=identity, need_identity=True)
        with vault_errors():
            added = vault.add_recipient(key)
            count = len(vault.recipients())
        if not added:
            fail("recipient already exists", 1)
        typer.echo(f"re-encrypted vault for {count} recipients", err=True)

    @app.command("remove-recipient")
    def remove_recipient(
        key: Annotated[str, typer.Argument(help="age1… public key.")],
        config: ConfigOption = None,
        global_: GlobalOption = False,
        identity: IdentityOpt = None,
    ) -> None:
        """Re-encrypt the project vault (or --global) without a recipient."""
        settings = settings_or_exit(config)
        vault = recipients_vault(settings, global_=global_, identity=identity, need_identity=True)
        with vault_errors():
            vault.remove_recipient(key)
            count = len(vault.recipients())
        typer.echo(f"re-encrypted vault for {count} recipients", err=True)


def cwd_identity(settings: Settings, identity: Path | None) -> IdentitySource | None:
    """The identity if one is found (status and scans work without one)."""
    try:
        return find_identity(identity, home=settings.home, env=os.environ)
    except VaultError:
        return None
