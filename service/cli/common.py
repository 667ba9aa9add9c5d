"""Helpers shared by CLI commands: settings loading with clean errors, client options."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from service.fileio import TokenFileError, read_one_token
from service.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from service.client import Target

R = TypeVar("R")

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
# A file, not the token itself: argv is readable by every local user in /proc.
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="File holding the bearer token for --url (default: PATINA_SERVE_TOKEN, then "
        "run/serve.token).",
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
InsecureUrlOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="Allow a plain http:// --url to a loopback address (the token crosses it "
        "unencrypted).",
    ),
]


@dataclass(frozen=True)
class TargetOptions:
    """Where a client command reaches the service: --socket, or --url, --token-file, --ca,
    --cert, --key and --insecure. The field types are the options' typer declarations (see
    with_target_options).
    """

    socket: SocketOption = None
    url: UrlOption = None
    token_file: TokenFileOption = None
    ca: CaOption = None
    cert: ClientCertOption = None
    key: ClientKeyOption = None
    insecure: InsecureUrlOption = False

    def resolve(self, settings: Settings) -> Target:
        """Where to reach the service: these options, else the local socket from settings.
        Exits 2 for a URL that would carry a token unencrypted."""
        # Imported here: httpx is kept out of start-up for the commands that do not need it.
        from service.client import TargetError, resolve_target

        token = None
        if self.url is not None and self.token_file is not None:
            token = read_token_file(self.token_file)
        try:
            target = resolve_target(
                settings,
                socket=self.socket,
                url=self.url,
                token=token,
                ca=self.ca,
                cert=self.cert,
                key=self.key,
                insecure=bool(self.insecure),
            )
        except TargetError as exc:
            fail(str(exc))
        if target.note:
            typer.echo(f"patina: note: {target.note}", err=True)
        return target


def read_token_file(path: Path) -> str:
    """The token a --token-file holds; exits 2 naming the file, never its contents, when it
    cannot be read or holds no single token."""
    try:
        return read_one_token(path, label="--token-file")
    except TokenFileError as exc:
        fail(str(exc))


def with_target_options(command: Callable[..., R]) -> Callable[..., R]:
    """Give a typer command the client-target options as one `target: TargetOptions`.

    The decorated function takes a keyword argument `target: TargetOptions`; the command
    typer sees has, in its place, --socket, --url, --token-file, --ca, --cert, --key and
    --insecure (after the function's own options, in that order), and builds the
    TargetOptions from them.
    """
    # A decorator, not a parameter type: typer declares options by the function's signature.
    signature = inspect.signature(command)
    if "target" not in signature.parameters:
        raise TypeError(f"{command.__name__} takes no `target` argument")
    # Typer reads annotations as objects (the command modules use postponed annotations).
    hints = typing.get_type_hints(command, include_extras=True)
    option_types = typing.get_type_hints(TargetOptions, include_extras=True)
    defaults = {field.name: field.default for field in dataclasses.fields(TargetOptions)}
    params = [
        param.replace(annotation=hints.get(param.name, param.annotation))
        for param in signature.parameters.values()
        if param.name != "target"
    ]
    params += [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name], annotation=option
        )
        for name, option in option_types.items()
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        target = TargetOptions(**{name: kwargs.pop(name, defaults[name]) for name in option_types})
        return command(*args, target=target, **kwargs)

    returns = hints.get("return", signature.return_annotation)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=returns
    )
    wrapper.__annotations__ = {param.name: param.annotation for param in params}
    wrapper.__annotations__["return"] = returns
    return wrapper


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
