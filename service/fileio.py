"""Files with anything sensitive: created 0600 atomically (temp, fsync, rename)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


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
