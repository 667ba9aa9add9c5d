"""`patina secrets run --ssh HOST`: run the command remotely with the secrets sent through
ssh's stdin, never through any argv (ours, ssh's or the remote shell's).

The remote side is a small POSIX `sh` script passed as ssh's command. It reads one line
per secret from stdin into unexported shell variables (`read` and `printf` are shell
builtins, so no process ever holds a value in its argv), exports the `--env` variables,
and `exec`s the command; whatever stdin remains is the command's stdin.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from service.agent.run import REFERENCE_RE, Reference, Resolved, RunError

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,:/@%+=-")


def encode_line(value: str) -> bytes:
    """One line that `printf '%b'` turns back into `value`: every byte outside a safe set
    becomes a `\\0ooo` octal escape (so newlines and quotes survive `read -r`)."""
    raw = value.encode()
    if b"\0" in raw:
        raise RunError("a secret holding a NUL byte cannot be passed in an environment")
    return b"".join(bytes([b]) if b in _SAFE else b"\\0%03o" % b for b in raw) + b"\n"


def ssh_invocation(
    host: str,
    command: Sequence[str],
    injected: Sequence[tuple[str, Reference]],
    resolved: Mapping[Reference, Resolved],
    *,
    ssh: str = "ssh",
    options: Sequence[str] = (),
) -> tuple[list[str], bytes]:
    """ssh's argv and the stdin preamble that carries the values."""
    if not host or host.startswith("-"):
        raise RunError("--ssh wants a host name")
    if not command:
        raise RunError("no command given")
    order = sorted(resolved, key=str)
    var_of = {ref: f"__patina_s{index}" for index, ref in enumerate(order)}
    lines = [
        "__patina_get() { IFS= read -r __patina_line || exit 97; }",
    ]
    preamble = []
    for ref in order:
        var = var_of[ref]
        lines.append(f"__patina_get; {var}=$(printf '%bx' \"$__patina_line\"); {var}=${{{var}%x}}")
        preamble.append(encode_line(resolved[ref].value))
    lines.append("unset __patina_line")
    for name, ref in injected:
        lines.append(f'export {name}="${var_of[ref]}"')
    words = [_remote_word(arg, var_of) for arg in command]
    lines.append("exec " + " ".join(words))
    script = "\n".join(lines) + "\n"
    remote = "sh -c " + shlex.quote(script)
    return [ssh, "-T", *options, host, remote], b"".join(preamble)


def _remote_word(arg: str, var_of: Mapping[Reference, str]) -> str:
    """One argv word for the remote shell: literal text quoted, references as "$var"."""
    parts = []
    pos = 0
    for match in REFERENCE_RE.finditer(arg):
        if match.start() > pos:
            parts.append(shlex.quote(arg[pos : match.start()]))
        handle, name = match.groups()
        ref = Reference("handle", handle) if handle else Reference("name", name)
        parts.append(f'"${var_of[ref]}"')
        pos = match.end()
    if pos < len(arg) or not parts:
        parts.append(shlex.quote(arg[pos:]))
    return "".join(parts)
