"""Unix socket listeners, bound by us rather than uvicorn (whose --uds chmods to 0666).

Rules, stricter than Patina's hardening spec:
* the run dir is created 0700, must be ours, must not be a symlink, and must not be wider
  than the configured mode, judged bit by bit; nobody but us may write into it unless it
  has the sticky bit (so nobody but us can unlink or rename our sockets) — else refuse to
  start. Clients check who serves a socket anyway (service/socket_peer.py): an impostor
  that gets a socket in place is refused before anything is sent to it;
* a socket is bound in a private directory made for the purpose inside the run dir, under
  umask 0177, given its configured mode and group there, and only then renamed into
  place: its mode and group are never set by a path another user could have swapped for
  a symlink, and it appears at its path listening, with its final mode;
* an existing path is removed only if it is a socket, owned by us, and nothing answers on
  it; a live server means "already running"; a symlink or regular file is never touched;
* on shutdown the socket is removed only if it is still the inode we created.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from service.errors import StartupError

log = logging.getLogger("patina.transport")
BACKLOG = 512


@dataclass
class BoundSocket:
    sock: socket.socket
    path: Path
    inode: tuple[int, int]  # (st_dev, st_ino) of the socket file we created


def ensure_run_dir(path: Path, *, max_mode: int = 0o700) -> None:
    """Create the run dir 0700 if absent; refuse to start if it is unsafe."""
    path = path.expanduser()
    if not path.exists() and not path.is_symlink():
        # Parents we create are private too (e.g. ~/.patina).
        old = os.umask(0o077)
        try:
            path.mkdir(parents=True, mode=0o700)
        finally:
            os.umask(old)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise StartupError(f"run dir {path} is a symlink; refusing to use it")
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"run dir {path} is not a directory")
    if st.st_uid != os.geteuid():
        raise StartupError(
            f"run dir {path} is owned by uid {st.st_uid}, not by this user ({os.geteuid()})"
        )
    mode = stat.S_IMODE(st.st_mode)
    # setgid only makes new files take the directory's group: harmless, often wanted.
    wider = mode & ~max_mode & ~stat.S_ISGID
    if wider or mode & 0o007:
        raise StartupError(
            f"run dir {path} has mode {mode:04o}, wider than {max_mode:04o}: other users could "
            f"reach or replace the socket. Fix it with: chmod {max_mode & 0o7777:o} {path}"
        )
    if mode & 0o020 and not mode & stat.S_ISVTX:
        raise StartupError(
            f"run dir {path} has mode {mode:04o}: its group can unlink the sockets and bind "
            f"its own. Fix it with: chmod {(mode | stat.S_ISVTX) & 0o7777:o} {path} (the "
            "sticky bit) or chmod g-w"
        )


def bind_unix_socket(path: Path, *, mode: int = 0o600, group: str | None = None) -> BoundSocket:
    """Bind and listen on `path` following the rules above."""
    clear_stale_socket(path)
    gid = _gid(group) if group is not None else None
    # mkdtemp: a new directory, 0700 and ours, under a name nobody could have prepared.
    private = Path(tempfile.mkdtemp(prefix=".b", dir=path.parent))
    staged = private / path.name
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)  # the socket is born 0600: no window where it is wider
        try:
            sock.bind(str(staged))
        except OSError as exc:
            raise StartupError(
                f"cannot bind {path} (via {staged}): {exc.strerror or exc}"
            ) from None
        finally:
            os.umask(old)
        # By path, but inside a directory only we can write: nobody can swap these.
        if mode != 0o600:
            os.chmod(staged, mode)
        if gid is not None:
            os.chown(staged, -1, gid)
        st = os.lstat(staged)
        sock.listen(BACKLOG)
        sock.setblocking(False)
        # Atomic; in a sticky run dir it cannot replace an entry another user owns.
        try:
            os.rename(staged, path)
        except OSError as exc:
            raise StartupError(f"cannot put the socket at {path}: {exc.strerror}") from None
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(private)
    return BoundSocket(sock=sock, path=path, inode=(st.st_dev, st.st_ino))


def clear_stale_socket(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise StartupError(f"{path} is a symlink; refusing to follow or remove it")
    if not stat.S_ISSOCK(st.st_mode):
        raise StartupError(f"{path} exists and is not a socket; refusing to remove it")
    if st.st_uid != os.geteuid():
        raise StartupError(f"socket {path} belongs to uid {st.st_uid}; refusing to remove it")
    if _answers(path):
        raise StartupError(f"another server is already running on {path}")
    log.info("removing stale socket", extra={"fields": {"path": str(path)}})
    os.unlink(path)


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise StartupError(f"cannot probe socket {path}: {exc.strerror}") from None
    finally:
        probe.close()
    return True


def remove_socket(bound: BoundSocket) -> None:
    """Unlink the socket file if it is still the one we created."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(bound.path)
        if (st.st_dev, st.st_ino) == bound.inode:
            os.unlink(bound.path)


def _gid(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise StartupError(f"socket group {group!r} does not exist") from None
