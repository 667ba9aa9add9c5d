"""What a scan reads: the staged content (`check`), the tracked files (`audit`), or every
line ever added in the history (`--history`). Each source yields texts with a location;
git is run with `-z` and `--no-ext-diff`/`--no-textconv` so its output is parsed, never
guessed, and no configured helper runs.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 4 * 1024 * 1024
_GIT = ("git", "-c", "core.quotepath=off", "-c", "diff.noprefix=false")


class ScanSourceError(Exception):
    """Git could not be read (not a repository, git missing)."""


@dataclass(frozen=True)
class Text:
    """One text to scan. `lines` maps a line of `data` to the line shown (history: the
    line numbers of the new file, from the hunk headers); None means 1:1."""

    path: str
    data: bytes
    where: str = ""  # a commit id for history
    lines: tuple[int, ...] | None = None

    def shown_line(self, line: int) -> int:
        if self.lines is None:
            return line
        return self.lines[min(line, len(self.lines)) - 1]


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            [*_GIT, *args], cwd=root, input=stdin, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise ScanSourceError("git is not installed") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ScanSourceError(f"git {args[0]}: {message[-1] if message else 'failed'}")
    return done.stdout


def repository_root(start: Path) -> Path:
    """The top of the work tree containing `start`."""
    return Path(_git(start, "rev-parse", "--show-toplevel").decode().strip())


def _scannable(data: bytes) -> bool:
    return len(data) <= MAX_FILE_BYTES and b"\x00" not in data[:8192]


def staged(root: Path) -> Iterator[Text]:
    """What the next commit would hold: added, copied, modified or renamed files, read
    from the index (not the work tree, which may differ)."""
    names = _git(root, "diff", "--cached", "--name-only", "-z", "--diff-filter=ACMR")
    paths = [p for p in names.decode("utf-8", "surrogateescape").split("\0") if p]
    if not paths:
        return
    request = "".join(f":{p}\n" for p in paths).encode("utf-8", "surrogateescape")
    out = _git(root, "cat-file", "--batch", stdin=request)
    offset = 0
    for path in paths:
        header_end = out.index(b"\n", offset)
        header = out[offset:header_end].split()
        offset = header_end + 1
        if len(header) < 3 or header[1] != b"blob":
            continue
        size = int(header[2])
        data = out[offset : offset + size]
        offset += size + 1
        if _scannable(data):
            yield Text(path, data)


def tracked(root: Path) -> Iterator[Text]:
    """Every tracked file as it is in the work tree (symlinks and missing files skipped)."""
    names = _git(root, "ls-files", "-z")
    for path in names.decode("utf-8", "surrogateescape").split("\0"):
        if not path:
            continue
        full = root / path
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not os.path.isfile(f"/proc/self/fd/{fd}") or os.fstat(fd).st_size > MAX_FILE_BYTES:
                continue
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read()
        finally:
            os.close(fd)
        if _scannable(data):
            yield Text(path, data)


_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def history(root: Path) -> Iterator[Text]:
    """Every line any commit added, per commit and file, with its line number in that
    commit's version of the file (all refs, merges as their first-parent diff)."""
    out = _git(
        root,
        "log",
        "--all",
        "-p",
        "--first-parent",
        "--unified=0",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "--format=commit %H",
    )
    commit = ""
    path: str | None = None
    added: list[bytes] = []
    numbers: list[int] = []
    next_line = 0

    def flush() -> Iterator[Text]:
        if path is not None and added:
            data = b"\n".join(added) + b"\n"
            if _scannable(data):
                yield Text(path, data, where=commit[:12], lines=tuple(numbers))

    for line in out.split(b"\n"):
        if line.startswith(b"commit ") and len(line) == 47:
            yield from flush()
            commit, path, added, numbers = line[7:].decode(), None, [], []
        elif line.startswith(b"+++ "):
            yield from flush()
            added, numbers = [], []
            target = line[4:]
            path = None if target == b"/dev/null" else target[2:].decode("utf-8", "replace")
        elif line.startswith(b"@@"):
            match = _HUNK.match(line)
            next_line = int(match.group(1)) if match else 0
        elif line.startswith(b"+") and path is not None:
            added.append(line[1:])
            numbers.append(next_line)
            next_line += 1
    yield from flush()
