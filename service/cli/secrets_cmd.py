"""`patina secrets …`: the age vault, opaque handles, `run` with output scrubbing, `redact`.

No command takes a secret value from its argv: values come from a masked prompt, stdin,
the vault or the service. Error messages name secrets, never show values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import typer

from service.agent.patina_source import PatinaSource, patina_vaults
from service.agent.patina_vault import registered_env_names
from service.agent.run import (
    Reference,
    RunError,
    SecretSource,
    ServiceSource,
    ServiceUnreachable,
    VaultSource,
    plan_command,
    references_in,
    run_scrubbed,
    scrubber_for,
)
from service.agent.ssh import ssh_invocation
from service.agent.vault import (
    IDENTITY_ENV,
    Vault,
    VaultError,
    default_identity_path,
    default_vault_path,
    find_identity,
    identity_public_keys,
    init_vault,
    parse_identities,
    validate_name,
)
from service.cli import secrets_patina, secrets_scan
from service.cli.common import (
    ConfigOption,
    TargetOptions,
    fail,
    settings_or_exit,
    with_target_options,
)
from service.client import open_client, response_error
from service.fileio import write_private
from service.redaction.scrubber import scrub_fd
from service.secret_names import NAME_PATTERN
from service.settings import Settings

secrets_app = typer.Typer(
    help="Agent-safe secrets: an age vault, opaque handles, `run` with scrubbed output. "
    "Without a command: the status of the vaults.",
    invoke_without_command=True,
)
recipients_app = typer.Typer(help="Who the vault is encrypted to.", no_args_is_help=True)
secrets_app.add_typer(recipients_app, name="recipients")

VaultOption = Annotated[
    Path | None,
    typer.Option(
        "--vault",
        envvar="PATINA_VAULT",
        help="Vault file (default: HOME/secrets/vault.age).",
        show_default=False,
    ),
]
IdentityOption = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        "-i",
        help="age identity file (default: PATINA_IDENTITY, HOME/secrets/identity.txt, "
        "then /run/secrets/patina_identity).",
        show_default=False,
    ),
]
SourceOption = Annotated[
    str,
    typer.Option(
        "--source",
        help="auto (service over the socket, then --url, then the local vault, then Patina's "
        "vaults), service, vault or patina.",
    ),
]
NO_ARGV_VALUES = (
    "values are never taken from the command line (argv is visible to every process and "
    "lands in shell history and agent transcripts); use the masked prompt or --stdin"
)


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app, name="secrets")
    secrets_patina.register(secrets_app)
    secrets_scan.register(secrets_app)


@secrets_app.callback()
def status(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Without a command: each vault, its registered names and env names, and the identity
    (as a bare `patina secrets` shows them; nothing is decrypted)."""
    if ctx.invoked_subcommand is None:
        secrets_patina.show_status(_settings(config))


def _settings(config: Path | None) -> Settings:
    return settings_or_exit(config)


def _vault_path(settings: Settings, vault: Path | None) -> Path:
    return vault or default_vault_path(settings.home)


def _open_vault(settings: Settings, vault: Path | None, identity: Path | None) -> Vault:
    try:
        return Vault(_vault_path(settings, vault), find_identity(identity, home=settings.home))
    except VaultError as exc:
        fail(str(exc))


@contextlib.contextmanager
def _vault_errors() -> Iterator[None]:
    try:
        yield
    except VaultError as exc:
        fail(str(exc))


# --- vault ----------------------------------------------------------------------------


@secrets_app.command("init")
def init(
    config: ConfigOption = None, vault: VaultOption = None, identity: IdentityOption = None
) -> None:
    """Create an empty vault; generate an identity (0600) unless one exists."""
    settings = _settings(config)
    path = _vault_path(settings, vault)
    identity_path = identity or default_identity_path(settings.home)
    with _vault_errors():
        identity_text = None
        if identity is None and not identity_path.exists():
            # PATINA_IDENTITY or a mounted identity, if present, is used instead of a new key.
            with contextlib.suppress(VaultError):
                identity_text = find_identity(None, home=settings.home).text
        public = init_vault(path, identity_path, identity_text=identity_text)
    typer.echo(f"vault {path} created for recipient {public}")
    if identity_text is None:
        typer.echo(f"identity: {identity_path}")


@secrets_app.command("add")
def add(
    name: Annotated[
        str,
        typer.Argument(help=f"Secret name: Patina's github-token, or ^{NAME_PATTERN}$."),
    ],
    extra: Annotated[list[str] | None, typer.Argument(hidden=True, show_default=False)] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the value from stdin (one newline stripped).")
    ] = False,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Env name to inject it as (default: GITHUB_TOKEN for "
            "github-token). Patina vaults.",
            show_default=False,
        ),
    ] = None,
    global_: secrets_patina.GlobalOption = False,
    config: ConfigOption = None,
    vault: VaultOption = None,
    identity: IdentityOption = None,
) -> None:
    """Add or replace a secret. The value comes from a masked prompt or --stdin, never argv.
    A Patina name, --env or --global stores it in Patina's vault (project, else global)."""
    if extra or "=" in name:
        fail(NO_ARGV_VALUES)
    settings = _settings(config)
    if secrets_patina.wants_patina(settings, name, env=env, global_=global_, vault=vault):
        value = _read_value(stdin)
        secrets_patina.add_patina(
            settings, name, value, env=env, global_=global_, identity=identity
        )
        return
    try:
        validate_name(name)
    except VaultError as exc:
        fail(str(exc))
    value = _read_value(stdin)
    opened = _open_vault(settings, vault, identity)
    with _vault_errors():
        replaced = opened.set(name, value)
    typer.echo(f"{'replaced' if replaced else 'added'} {name}", err=True)


def _read_value(from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    else:
        if not sys.stdin.isatty():
            fail("no terminal for the masked prompt; pipe the value with --stdin")
        value = typer.prompt("Value", hide_input=True, confirmation_prompt=True)
    if not value:
        fail("empty value")
    return value


@secrets_app.command("list")
def list_names(
    config: ConfigOption = None, vault: VaultOption = None, identity: IdentityOption = None
) -> None:
    """Names in the vault, one per line (never values)."""
    opened = _open_vault(_settings(config), vault, identity)
    with _vault_errors():
        names = opened.names()
    for name in names:
        typer.echo(name)


@secrets_app.command("rm")
def remove(
    name: str,
    config: ConfigOption = None,
    vault: VaultOption = None,
    identity: IdentityOption = None,
) -> None:
    """Remove a secret from the vault."""
    opened = _open_vault(_settings(config), vault, identity)
    with _vault_errors():
        opened.remove(name)
    typer.echo(f"removed {name}", err=True)


@recipients_app.command("list")
def recipients_list(config: ConfigOption = None, vault: VaultOption = None) -> None:
    """Public keys the vault is encrypted to."""
    from service.agent.vault import read_recipients

    with _vault_errors():
        keys = read_recipients(_vault_path(_settings(config), vault))
    for key in keys:
        typer.echo(key)


@recipients_app.command("add")
def recipients_add(
    key: Annotated[str, typer.Argument(help="age1… public key.")],
    config: ConfigOption = None,
    vault: VaultOption = None,
    identity: IdentityOption = None,
) -> None:
    """Re-encrypt the vault to one more recipient."""
    opened = _open_vault(_settings(config), vault, identity)
    with _vault_errors():
        added = opened.add_recipient(key)
    typer.echo("added" if added else "already a recipient", err=True)


@recipients_app.command("rm")
def recipients_rm(
    key: Annotated[str, typer.Argument(help="age1… public key.")],
    config: ConfigOption = None,
    vault: VaultOption = None,
    identity: IdentityOption = None,
) -> None:
    """Re-encrypt the vault without a recipient (not the last, not your own only one)."""
    opened = _open_vault(_settings(config), vault, identity)
    with _vault_errors():
        opened.remove_recipient(key)
    typer.echo("removed", err=True)


@secrets_app.command("export-key")
def export_key(
    file: Annotated[Path | None, typer.Argument(help="Write the identity here (0600).")] = None,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print the identity instead.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    config: ConfigOption = None,
    identity: IdentityOption = None,
) -> None:
    """Copy the identity (secret key) to a 0600 file, or to stdout with --stdout."""
    settings = _settings(config)
    with _vault_errors():
        text = find_identity(identity, home=settings.home).text
    if stdout:
        sys.stdout.write(text)
        return
    if file is None:
        fail("give a FILE to write the key to, or --stdout")
    if file.exists() and not force:
        fail(f"{file} exists; pass --force to replace it")
    write_private(file, text.encode())
    typer.echo(f"identity written to {file} (mode 0600)", err=True)


@secrets_app.command("import-key")
def import_key(
    file: Annotated[Path | None, typer.Argument(help="age identity file to import.")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the identity from stdin.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing identity.")] = False,
    config: ConfigOption = None,
    identity: IdentityOption = None,
) -> None:
    """Install an identity (e.g. from `age-keygen` or another machine) as the vault key."""
    settings = _settings(config)
    target = identity or default_identity_path(settings.home)
    if stdin == (file is not None):
        fail("give either FILE or --stdin")
    text = sys.stdin.read() if stdin else _read_text(file)
    with _vault_errors():
        parse_identities(text)
        public = identity_public_keys(text)
    if target.exists() and not force:
        fail(f"{target} exists; pass --force to replace it")
    write_private(target, text.encode() if text.endswith("\n") else (text + "\n").encode())
    typer.echo(f"identity {target} installed; public key {public[0]}", err=True)


def _read_text(path: Path | None) -> str:
    assert path is not None
    try:
        return path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


# --- handles, run, redact ---------------------------------------------------------------


@contextlib.contextmanager
def _source(
    settings: Settings,
    kind: str,
    *,
    vault: Path | None,
    identity: Path | None,
    target: TargetOptions,
) -> Iterator[SecretSource]:
    """The service (Unix socket first, then --url with TLS and a token) or the vault."""
    if kind not in ("auto", "service", "vault", "patina"):
        fail("--source is auto, service, vault or patina")
    if kind == "vault" or (kind == "auto" and vault is not None):
        yield VaultSource(_open_vault(settings, vault, identity))
        return
    if kind == "patina":
        yield _patina_source(settings, identity)
        return
    endpoints = [TargetOptions(socket=target.socket).resolve(settings)]
    url = target.url or os.environ.get("PATINA_SERVE_URL")
    if url:
        endpoints.append(dataclasses.replace(target, socket=None, url=url).resolve(settings))
    tried = []
    for endpoint in endpoints:
        with open_client(endpoint, timeout=30.0) as client:
            source = ServiceSource(client, where=endpoint.describe())
            try:
                source.probe()
            except (ServiceUnreachable, RunError) as exc:
                tried.append(str(exc))
                continue
            yield source
            return
    if kind == "auto" and _vault_path(settings, vault).exists():
        yield VaultSource(_open_vault(settings, vault, identity))
        return
    if kind == "auto" and patina_vaults(settings.home, Path.cwd(), None):
        yield _patina_source(settings, identity)
        return
    fail("no secrets source: " + "; ".join(tried) + " (and no local vault)")


def _patina_source(settings: Settings, identity: Path | None) -> PatinaSource:
    with _vault_errors():
        found = find_identity(identity, home=settings.home)
    vaults = patina_vaults(settings.home, Path.cwd(), found)
    if not vaults:
        fail("no Patina vault (HOME/vault.age or .patina/vault.age)")
    return PatinaSource(vaults)


def _inject_everything(settings: Settings, source: SecretSource) -> list[str]:
    """`--env ENV=ENV` for every secret Patina's registries list (global and project),
    as Patina's `secrets run` injects them all; with the service as the source, those the
    service holds under that name."""
    registered = registered_env_names(patina_vaults(settings.home, Path.cwd(), None))
    if not registered:
        return []
    available = set(source.names())
    return [f"{name}={name}" for name in registered if name in available]


@secrets_app.command("handle")
@with_target_options
def handle(
    name: str,
    ttl: Annotated[int | None, typer.Option("--ttl", help="Seconds (server default).")] = None,
    uses: Annotated[int | None, typer.Option("--uses", help="Resolutions allowed.")] = None,
    config: ConfigOption = None,
    *,
    target: TargetOptions,
) -> None:
    """Mint an opaque handle for a secret (print `<secret:…>`), to give to an agent."""
    endpoint = target.resolve(_settings(config))
    body: dict[str, object] = {"name": name}
    if ttl is not None:
        body["ttl_secs"] = ttl
    if uses is not None:
        body["uses"] = uses
    try:
        with open_client(endpoint, timeout=10.0) as client:
            response = client.post("/secrets/handles", json=body)
    except (httpx.HTTPError, OSError) as exc:
        fail(f"{endpoint.describe()} is not answering: {exc}", 1)
    if response.status_code != 201:
        fail(f"{response_error(response)} (HTTP {response.status_code})", 1)
    typer.echo(response.json()["handle"])


@secrets_app.command(
    "run",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
@with_target_options
def run(
    command: Annotated[list[str], typer.Argument(help="CMD ARGS… (after --).")],
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Inject VAR=NAME (or VAR=<secret:…>); repeat."),
    ] = None,
    ssh_host: Annotated[
        str | None, typer.Option("--ssh", help="Run on HOST via ssh; secrets go over stdin.")
    ] = None,
    source: SourceOption = "auto",
    config: ConfigOption = None,
    vault: VaultOption = None,
    identity: IdentityOption = None,
    *,
    target: TargetOptions,
) -> None:
    """Run CMD with secrets resolved at exec time; scrub every value from its output.

    Handles (<secret:…>) and ${secret:NAME} in CMD ARGS and in the environment are replaced
    by values; --env VAR=NAME injects variables (prefer it: argv is visible in /proc). The
    child's stdout and stderr show handles instead of values, also base64/hex/URL-encoded.
    Exit code: the child's, or 128+N when signal N ended it.
    """
    settings = _settings(config)
    env_list = env or []
    code = 0
    with _source(settings, source, vault=vault, identity=identity, target=target) as secrets_source:
        try:
            if not env_list and not references_in(command):
                env_list = _inject_everything(settings, secrets_source)
            plan = plan_command(
                command,
                env_list,
                secrets_source,
                base_env=os.environ,
                resolve_env=ssh_host is None,
            )
            for placeholder in plan.too_short():
                typer.echo(
                    f"patina: warning: {placeholder} is too short to be scrubbed from output",
                    err=True,
                )
            scrubber = plan.scrubber()
            if ssh_host is not None:
                argv, preamble = ssh_invocation(ssh_host, command, plan.injected, plan.resolved)
                # ssh runs with our environment minus the vault key; values go over stdin.
                local_env = {k: v for k, v in os.environ.items() if k != IDENTITY_ENV}
                code = run_scrubbed(
                    argv,
                    local_env,
                    scrubber,
                    shown=argv[0],
                    stdin_data=preamble,
                    own_session=False,
                )
            else:
                if plan.argv_has_value:
                    typer.echo(
                        "patina: note: a secret is in the command's argv, visible in /proc; "
                        "prefer --env VAR=NAME",
                        err=True,
                    )
                code = run_scrubbed(plan.argv, plan.env, scrubber, shown=plan.command[0])
        except RunError as exc:
            fail(str(exc), 127 if str(exc).startswith("cannot run") else 2)
    raise typer.Exit(code)


@secrets_app.command("redact")
@with_target_options
def redact(
    name: Annotated[
        list[str] | None,
        typer.Option("--name", "-n", help="Scrub only these secrets (default: every readable)."),
    ] = None,
    source: SourceOption = "auto",
    config: ConfigOption = None,
    vault: VaultOption = None,
    identity: IdentityOption = None,
    *,
    target: TargetOptions,
) -> None:
    """Filter stdin to stdout, replacing secret values (and their encodings) by handles."""
    settings = _settings(config)
    with _source(settings, source, vault=vault, identity=identity, target=target) as secrets_source:
        try:
            if name:
                resolved = secrets_source.resolve(Reference("name", n) for n in name)
            else:
                resolved = secrets_source.everything()
        except RunError as exc:
            fail(str(exc))
    scrubber = scrubber_for(resolved.values())
    del resolved
    try:
        scrub_fd(scrubber, sys.stdin.fileno(), sys.stdout.fileno())
    except BrokenPipeError:
        # Downstream closed (`| head`): stop quietly, as `cat` does.
        with contextlib.suppress(OSError):
            os.close(sys.stdout.fileno())
        raise typer.Exit(141) from None
