"""Files with anything sensitive: created 0600 atomically (temp, fsync, rename), token files
read without ever quoting their contents, and the identity of a file that is watched for
changes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# (st_dev, st_ino, st_size, st_mtime_ns): changes when the file is edited or replaced,
# including an editor's or a ConfigMap's atomic rename.
FileIdentity = tuple[int, int, int, int]


def write_private(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Atomically replace `path` with `data`, never readable by others at any moment."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_private(path: Path, *, what: str) -> bytes:
    """Read a file that must not be group/world readable (tokens, keys)."""
    st = path.stat()
    if st.st_mode & 0o077:
        raise PermissionError(
            f"{what} {path} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it"
        )
    return path.read_bytes()


class TokenFileError(Exception):
    """A token file that cannot be used; the message names the file, never its contents."""


def read_one_token(path: Path, *, label: str) -> str:
    """The single token `path` holds (surrounding whitespace ignored). `label` names the
    setting or option the path came from, for the error message."""
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise TokenFileError(f"cannot read {label} {path}: {reason}") from None
    if not value or any(c.isspace() for c in value):
        raise TokenFileError(f"{label} {path} must hold one token")
    return value


def file_identity(path: Path) -> FileIdentity | None:
    """Which file is at `path` and which version of it, from metadata only; None when
    nothing is there (or it cannot be stat'ed)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
