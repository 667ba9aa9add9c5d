"""The files of one indexing root, listed and read through directory file descriptors.

Someone who can write into a project can swap any part of it while it is being indexed:
turn a listed directory into a symlink to the owner's `~/.ssh`, replace a file by a FIFO
that blocks a reader for ever, delete a file between listing and reading. Paths are
therefore never trusted: every directory is opened relative to its parent's descriptor
with O_NOFOLLOW, and every file relative to its directory's, with O_NOFOLLOW and
O_NONBLOCK, then checked with fstat to be a regular file. Whatever was swapped, vanished
or is not a plain file is skipped (and counted), never followed, never fatal. Symlinks are
not followed at all, inside the root or out of it.

Directories are read with the ignore rules git would apply (.gitignore files, `.git`),
and the service's own directories and files are left out by inode, whatever path leads
to them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

SKIP_DIRS = frozenset({".git", ".hg", ".svn"})
BINARY_SNIFF_BYTES = 8192
MAX_GITIGNORE_BYTES = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What opening a path whose parts were swapped or removed fails with.
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)

Inode = tuple[int, int]


class Skipped(Exception):
    """A listed file that is not indexed; `reason` says why (never its content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FileData:
    """A regular file's bytes and modification time, read from one open descriptor."""

    data: bytes
    mtime: float


def inodes_of(paths: Iterable[Path]) -> frozenset[Inode]:
    """(st_dev, st_ino) of each existing path (directories and files alike)."""
    out = set()
    for path in paths:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            out.add((st.st_dev, st.st_ino))
    return frozenset(out)


class Tree:
    """One root, opened once: `files()` lists it, `read()` reads one listed file."""

    def __init__(self, root: Path, *, excluded: frozenset[Inode] = frozenset()) -> None:
        self.root = root
        self.excluded = excluded
        self._excluded_inos = frozenset(ino for _dev, ino in excluded)
        self.excluded_seen: list[str] = []  # relative paths of excluded dirs/files met
        self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._cursor: list[tuple[str, int]] = []  # the open directories of the last read

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._move_cursor([])
        os.close(self._root_fd)

    # Listing ----------------------------------------------------------------------------

    def files(self) -> Iterator[str]:
        """Relative posix paths of the regular files git would not ignore, in a stable
        order. Symlinks and the service's excluded directories and files are left out."""
        yield from self._walk(self._root_fd, "", [])

    def listed(self, rel: str) -> bool:
        """Whether `files()` would list `rel` now: every directory on the way exists, is
        no symlink, not skipped, not ignored and not excluded, and `rel` is a regular file
        no .gitignore on the way ignores. The same rules as the listing, applied to one
        path (the watcher asks this of each changed file instead of walking the tree)."""
        *dirs, name = rel.split("/")
        if not name or any(not part or part in (".", "..") for part in dirs):
            return False
        specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
        opened: list[int] = []
        dir_fd, rel_dir = self._root_fd, ""
        try:
            for part in dirs:
                gitignore = _read_gitignore(dir_fd)
                if gitignore is not None:
                    specs.append((rel_dir, gitignore))
                rel_dir = f"{rel_dir}/{part}" if rel_dir else part
                if part in SKIP_DIRS or _ignored(specs, rel_dir, is_dir=True):
                    return False
                try:
                    dir_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
                except OSError:
                    return False
                opened.append(dir_fd)
                st = os.fstat(dir_fd)
                if (st.st_dev, st.st_ino) in self.excluded:
                    return False
            gitignore = _read_gitignore(dir_fd)
            if gitignore is not None:
                specs.append((rel_dir, gitignore))
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in self.excluded:
                return False
            return not _ignored(specs, rel, is_dir=False)
        finally:
            for fd in reversed(opened):
                os.close(fd)

    def _walk(
        self, dir_fd: int, rel_dir: str, specs: list[tuple[str, pathspec.GitIgnoreSpec]]
    ) -> Iterator[str]:
        gitignore = _read_gitignore(dir_fd)
        if gitignore is not None:
            specs = [*specs, (rel_dir, gitignore)]
        try:
            with os.scandir(dir_fd) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = not is_dir and entry.is_file(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if entry.name in SKIP_DIRS or _ignored(specs, rel, is_dir=True):
                    continue
                yield from self._walk_into(dir_fd, entry.name, rel, specs)
            elif is_file and not _ignored(specs, rel, is_dir=False):
                if self._excluded(entry.inode(), dir_fd, entry.name):
                    self.excluded_seen.append(rel)
                    continue
                yield rel

    def _walk_into(
        self,
        dir_fd: int,
        name: str,
        rel: str,
        specs: list[tuple[str, pathspec.GitIgnoreSpec]],
    ) -> Iterator[str]:
        try:
            sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            return  # gone, or swapped for a symlink or a file since the listing
        try:
            st = os.fstat(sub)
            if (st.st_dev, st.st_ino) in self.excluded:
                self.excluded_seen.append(rel + "/")
                return
            yield from self._walk(sub, rel, specs)
        finally:
            os.close(sub)

    def _excluded(self, inode: int, dir_fd: int, name: str) -> bool:
        if inode not in self._excluded_inos:  # the common case costs no system call
            return False
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self.excluded

    # Reading ----------------------------------------------------------------------------

    def read(self, rel: str, *, max_bytes: int) -> FileData:
        """The bytes of the listed file `rel`, opened through the directory descriptors
        without following any symlink. Raises Skipped for a file that vanished, was
        swapped, is not a regular file or is larger than `max_bytes`."""
        *dirs, name = rel.split("/")
        try:
            dir_fd = self._move_cursor(dirs)
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise Skipped("vanished or swapped" if exc.errno in _GONE else "unreadable") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Skipped("not a regular file")
            if (st.st_dev, st.st_ino) in self.excluded:
                raise Skipped("the service's own file")
            if st.st_size > max_bytes:
                raise Skipped("too large")
            data = _read_up_to(fd, max_bytes + 1)
        except OSError:
            raise Skipped("unreadable") from None
        finally:
            os.close(fd)
        if len(data) > max_bytes:
            raise Skipped("too large")
        return FileData(data, st.st_mtime)

    def _move_cursor(self, dirs: list[str]) -> int:
        """The descriptor of directory `dirs` (parts below the root), reusing the open
        directories the previous read shares with it (files come directory by directory)."""
        keep = 0
        while keep < len(self._cursor) and keep < len(dirs) and self._cursor[keep][0] == dirs[keep]:
            keep += 1
        for _name, fd in reversed(self._cursor[keep:]):
            os.close(fd)
        del self._cursor[keep:]
        for name in dirs[keep:]:
            parent = self._cursor[-1][1] if self._cursor else self._root_fd
            self._cursor.append((name, os.open(name, _DIR_FLAGS, dir_fd=parent)))
        return self._cursor[-1][1] if self._cursor else self._root_fd


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_gitignore(dir_fd: int) -> pathspec.GitIgnoreSpec | None:
    try:
        fd = os.open(".gitignore", _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = _read_up_to(fd, MAX_GITIGNORE_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    return pathspec.GitIgnoreSpec.from_lines(text.splitlines())


def _ignored(specs: list[tuple[str, pathspec.GitIgnoreSpec]], rel: str, *, is_dir: bool) -> bool:
    # The deepest .gitignore with an opinion wins, as in git.
    for base, spec in reversed(specs):
        if base and not rel.startswith(base + "/"):
            continue
        sub = rel[len(base) + 1 :] if base else rel
        result = spec.check_file(sub + "/" if is_dir else sub)
        if result.include is not None:
            return bool(result.include)
    return False


def iter_files(root: Path, *, excluded: frozenset[Inode] = frozenset()) -> list[str]:
    """The files `Tree(root).files()` lists (for callers that only need the list)."""
    with Tree(root.resolve(), excluded=excluded) as tree:
        return list(tree.files())


def is_binary(data: bytes) -> bool:
    """Text files hold no NUL byte near their start (as git decides)."""
    return b"\x00" in data[:BINARY_SNIFF_BYTES]
