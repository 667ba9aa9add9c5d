"""`patina secrets run`: resolve secret references at exec time, run the command, and scrub
every value from what it prints.

References an agent may write:

* ``<secret:HEX>`` — an opaque handle minted by the service for this caller;
* ``${secret:NAME}`` — a secret by name (service or local vault);
* ``--env VAR=NAME`` or ``--env VAR=<secret:HEX>`` — inject a variable into the child.

The child's output is passed through a Scrubber that replaces each value (and its encoded
forms) with the handle or reference that stands for it. Nothing is written to disk.

The child runs in a session of its own, without a controlling terminal: what it writes to
`/dev/tty` would reach the terminal without passing the scrubber, so opening `/dev/tty`
fails instead (ENXIO). A terminal on our stdin is handed on read-only, so the child can
read from it but not write to it. (A pty whose output is scrubbed too would let prompts
work, but would also make the child believe it talks to a person: colours, pagers,
progress bars, and echo of whatever is typed. An agent cannot answer a prompt anyway.)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any, Protocol

import httpx

from service.agent.vault import IDENTITY_ENV, Vault, VaultError
from service.client import response_error
from service.redaction.pump import pump
from service.redaction.scrubber import MIN_VALUE_LEN, Scrubber, write_all
from service.secret_names import NAME_PATTERN, valid_name

REFERENCE_RE = re.compile(rf"<secret:([0-9a-f]{{32}})>|\$\{{secret:({NAME_PATTERN})\}}")
# Signals passed on to the child. A terminal sends SIGINT and SIGQUIT to its whole
# foreground process group: a child in our session already has them when stdin is a tty;
# a child in a session of its own gets them, and SIGHUP and SIGWINCH, as a group too.
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)
_TTY_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
_GROUP_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGWINCH)
# Variables the child must not inherit: the key that opens the vault.
_WITHHELD_ENV = (IDENTITY_ENV,)


class RunError(Exception):
    """A reference could not be resolved or the command could not start (no values)."""


@dataclass(frozen=True)
class Reference:
    """`kind` is "handle" (key = hex id) or "name" (key = secret name)."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"<secret:{self.key}>" if self.kind == "handle" else f"${{secret:{self.key}}}"


@dataclass(frozen=True)
class Resolved:
    """A value and the placeholder shown instead of it."""

    value: str
    placeholder: str

    def __repr__(self) -> str:
        return f"Resolved(placeholder={self.placeholder!r})"


def resolve_from_store(
    refs: Iterable[Reference],
    load: Callable[[], Mapping[str, str]],
    *,
    store: str,
    missing: str,
) -> dict[Reference, Resolved]:
    """Resolve names from a store of values on this machine (a vault). Handles are minted
    by the service and only it can resolve them. `load` runs (decrypts) only when a name
    is asked for; the placeholder is the `${secret:NAME}` reference itself. `missing`
    ends the error for a name the store lacks ("in <path>")."""
    refs = set(refs)
    if any(ref.kind == "handle" for ref in refs):
        raise RunError(f"handles can only be resolved by the service, not {store}")
    if not refs:
        return {}
    values = load()
    out = {}
    for ref in refs:
        if ref.key not in values:
            raise RunError(f"no secret named {ref.key} {missing}")
        out[ref] = Resolved(values[ref.key], str(ref))
    return out


def references_in(texts: Iterable[str]) -> set[Reference]:
    """Every handle and `${secret:NAME}` in `texts`."""
    found = set()
    for text in texts:
        for match in REFERENCE_RE.finditer(text):
            handle, name = match.groups()
            found.add(Reference("handle", handle) if handle else Reference("name", name))
    return found


def parse_reference(text: str) -> Reference:
    """The right-hand side of `--env VAR=…`: a name, `${secret:NAME}` or a handle."""
    match = REFERENCE_RE.fullmatch(text)
    if match:
        handle, name = match.groups()
        return Reference("handle", handle) if handle else Reference("name", name)
    if valid_name(text):
        return Reference("name", text)
    # The text is not echoed: it may be a value typed by mistake.
    raise RunError("expected a secret name, ${secret:NAME} or a <secret:…> handle")


def parse_env_mappings(mappings: Sequence[str]) -> list[tuple[str, Reference]]:
    """`VAR=NAME` options. A value typed here would land in argv, so only references pass."""
    parsed = []
    for index, mapping in enumerate(mappings):
        var, sep, ref = mapping.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
            raise RunError(f"--env #{index + 1}: expected VAR=NAME")
        try:
            parsed.append((var, parse_reference(ref)))
        except RunError:
            raise RunError(
                f"--env {var}: expected a secret name or <secret:…> handle (values are never "
                "accepted on the command line)"
            ) from None
    return parsed


def substitute(text: str, resolved: Mapping[Reference, Resolved]) -> str:
    """Replace every reference in `text` by its value."""

    def value_of(match: re.Match[str]) -> str:
        handle, name = match.groups()
        ref = Reference("handle", handle) if handle else Reference("name", name)
        return resolved[ref].value

    return REFERENCE_RE.sub(value_of, text)


# --- where values come from ------------------------------------------------------------


class SecretSource(Protocol):
    """Turns references into values and placeholders."""

    def resolve(self, refs: Iterable[Reference]) -> dict[Reference, Resolved]: ...

    def everything(self) -> dict[Reference, Resolved]:
        """Every secret the caller may read (for `patina secrets redact`)."""
        ...

    def names(self) -> list[str]:
        """The names the caller may read, without their values."""
        ...


class ServiceUnreachable(Exception):
    """The service did not answer (connection level); the caller may fall back."""


class ServiceSource:
    """The running service: handles and names resolve through /secrets/resolve, a name
    shown as a handle minted (or reused) for this caller."""

    def __init__(self, client: httpx.Client, *, where: str) -> None:
        self._client = client
        self._where = where

    def __repr__(self) -> str:
        return f"ServiceSource({self._where!r})"

    def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except (httpx.TransportError, OSError) as exc:
            raise ServiceUnreachable(f"{self._where}: {exc}") from None
        if response.status_code >= 400:
            message = response_error(response)
            raise RunError(f"{self._where}: {message} (HTTP {response.status_code})")
        return response

    def probe(self) -> None:
        """Raise ServiceUnreachable unless the service answers."""
        self._call("GET", "/health")

    def resolve(self, refs: Iterable[Reference]) -> dict[Reference, Resolved]:
        """Every reference in one request: the service answers handles then names, in the
        order asked, each name with a handle of ours to show in place of its value."""
        refs = sorted(set(refs), key=str)
        if not refs:
            return {}
        handles = [ref for ref in refs if ref.kind == "handle"]
        names = [ref for ref in refs if ref.kind == "name"]
        body = {"handles": [str(ref) for ref in handles], "names": [ref.key for ref in names]}
        answer = self._call("POST", "/secrets/resolve", json=body).json()["secrets"]
        return {
            ref: Resolved(item["value"], item["handle"])
            for ref, item in zip(handles + names, answer, strict=True)
        }

    def names(self) -> list[str]:
        names: list[str] = self._call("GET", "/secrets").json()["names"]
        return names

    def everything(self) -> dict[Reference, Resolved]:
        return self.resolve(Reference("name", name) for name in self.names())


class VaultSource:
    """The local age vault: names only (handles exist only in a service). The placeholder
    is the `${secret:NAME}` reference itself, which the agent can reuse."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def __repr__(self) -> str:
        return f"VaultSource({self._vault!r})"

    def resolve(self, refs: Iterable[Reference]) -> dict[Reference, Resolved]:
        return resolve_from_store(
            refs, self._load, store="the local vault", missing=f"in {self._vault.path}"
        )

    def _load(self) -> dict[str, str]:
        try:
            return self._vault.load()
        except VaultError as exc:
            raise RunError(str(exc)) from None

    def names(self) -> list[str]:
        try:
            return self._vault.names()
        except VaultError as exc:
            raise RunError(str(exc)) from None

    def everything(self) -> dict[Reference, Resolved]:
        return self.resolve(Reference("name", name) for name in self.names())


# --- the plan: what the child gets -----------------------------------------------------


@dataclass
class Plan:
    """A resolved command: argv and env of the child, and the scrubber for its output.
    `command` is the argv as given, with references (never values)."""

    command: list[str]
    argv: list[str]
    env: dict[str, str]
    injected: list[tuple[str, Reference]]
    resolved: dict[Reference, Resolved]
    argv_has_value: bool

    def __repr__(self) -> str:
        return f"Plan(argv0={self.command[:1]!r}, refs={len(self.resolved)})"

    def scrubber(self) -> Scrubber:
        return scrubber_for(self.resolved.values())

    def too_short(self) -> list[str]:
        """Placeholders of values too short to be scrubbed reliably."""
        return sorted(r.placeholder for r in self.resolved.values() if len(r.value) < MIN_VALUE_LEN)


def scrubber_for(resolved: Iterable[Resolved]) -> Scrubber:
    return Scrubber([(r.placeholder.encode(), r.value.encode()) for r in resolved])


def plan_command(
    command: Sequence[str],
    env_mappings: Sequence[str],
    source: SecretSource,
    *,
    base_env: Mapping[str, str],
    resolve_env: bool = True,
) -> Plan:
    """Resolve every reference in the command, the environment and the --env options."""
    if not command:
        raise RunError("no command given (usage: patina secrets run [--env VAR=NAME] -- CMD)")
    injected = parse_env_mappings(env_mappings)
    env = {k: v for k, v in base_env.items() if k not in _WITHHELD_ENV}
    refs = references_in(command) | {ref for _, ref in injected}
    if resolve_env:
        refs |= references_in(env.values())
    resolved = source.resolve(refs)
    argv = [substitute(arg, resolved) for arg in command]
    if resolve_env:
        env = {k: substitute(v, resolved) for k, v in env.items()}
    for var, ref in injected:
        env[var] = resolved[ref].value
    argv_has_value = any(arg != original for arg, original in zip(argv, command, strict=True))
    return Plan(list(command), argv, env, injected, resolved, argv_has_value)


# --- running ---------------------------------------------------------------------------


def exit_status(returncode: int) -> int:
    """The child's exit code, or 128+N when a signal N ended it (as shells report it)."""
    return 128 - returncode if returncode < 0 else returncode


def _read_only_terminal() -> int | None:
    """Our stdin reopened read-only when it is a terminal (the child may read keys but not
    write past the scrubber through it), else None (the child inherits stdin as it is)."""
    if sys.stdin is None or not _isatty(0):
        return None
    try:
        return os.open("/proc/self/fd/0", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return os.open(os.devnull, os.O_RDONLY)


def run_scrubbed(
    argv: Sequence[str],
    env: Mapping[str, str],
    scrubber: Scrubber,
    *,
    shown: str | None = None,
    stdin_data: bytes | None = None,
    own_session: bool = True,
    stdout_fd: int = 1,
    stderr_fd: int = 2,
) -> int:
    """Run `argv` with `env`, scrubbing its stdout and stderr into ours; forward signals;
    return the exit status. `shown` names the command in errors (argv[0] may hold a
    value). `stdin_data`, if given, is written to the child's stdin first, then our own
    stdin follows (the ssh variant sends secrets that way). `own_session`: the child gets a
    session without a controlling terminal (see the module docstring); ssh keeps ours for
    its own prompts, and gives the remote command no terminal (`-T`)."""
    terminal = _read_only_terminal() if own_session and stdin_data is None else None
    stdin: int | None = subprocess.PIPE if stdin_data is not None else terminal
    try:
        child, out_r, err_r = start_piped(
            argv, env, scrubber, stdin=stdin, own_session=own_session, shown=shown
        )
    finally:
        if terminal is not None:
            os.close(terminal)
    previous = _forward_signals(child, own_session=own_session)
    if stdin_data is not None:
        assert child.stdin is not None
        feeder = threading.Thread(target=_feed_stdin, args=(child.stdin, stdin_data), daemon=True)
        feeder.start()
    try:
        # In this thread: the two streams are scrubbed together (a value split between
        # them is caught), and signal handlers run between reads.
        pump(scrubber, [(out_r, stdout_fd), (err_r, stderr_fd)])
        returncode = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return exit_status(returncode)


def start_piped(
    argv: Sequence[str],
    env: Mapping[str, str],
    scrubber: Scrubber,
    *,
    stdin: int | None,
    own_session: bool,
    shown: str | None = None,
    cwd: str | None = None,
) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start `argv` with its stdout and stderr on new pipes, and return it with their read
    ends (for the scrubber). RunError, scrubbed, when it cannot start: `shown` names the
    command in that error (argv[0] may hold a value)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        child = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
            close_fds=True,
            start_new_session=own_session,
        )
    except OSError as exc:
        for fd in (out_r, err_r):
            os.close(fd)
        name = shown if shown is not None else "the command"
        # `shown` holds references, not values; scrubbed all the same.
        message = scrubber.scrub(f"cannot run {name}: {exc.strerror}".encode())
        raise RunError(message.decode(errors="replace")) from None
    finally:
        os.close(out_w)
        os.close(err_w)
    return child, out_r, err_r


def _feed_stdin(pipe: IO[bytes], data: bytes) -> None:
    """Write the preamble, then copy our stdin until EOF (or until the child stops reading)."""
    fd = pipe.fileno()
    try:
        write_all(fd, data)
        stdin_fd = sys.stdin.fileno() if sys.stdin is not None else -1
        if stdin_fd >= 0 and not os.isatty(stdin_fd):
            while chunk := os.read(stdin_fd, 1 << 16):
                write_all(fd, chunk)
    except (BrokenPipeError, OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _forward_signals(child: subprocess.Popen[bytes], *, own_session: bool) -> dict[int, Any]:
    interactive = not own_session and sys.stdin is not None and _isatty(0)

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        if interactive and signum in _TTY_SIGNALS:
            return  # the terminal sent it to the child already
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if own_session and signum in _GROUP_SIGNALS:
                os.killpg(child.pid, signum)
            else:
                child.send_signal(signum)

    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for signum in FORWARDED_SIGNALS:
        previous[signum] = signal.signal(signum, forward)
    return previous


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
