"""Streaming secret scrubber: replaces every known value — raw, escaped, encoded, wrapped
or dumped (forms.py lists the forms, views.py and dumps.py the views
that undo escaping, wrapping and dumping) — with a placeholder (the secret's handle), also
when a value is split across reads.

Searching is done by an engine (engines.py): hyperscan where its wheel installs, a
numpy q-gram filter elsewhere; choosing among the matches is done here (match.py),
so output does not depend on the engine.

Streaming holds back only what could still become a match (a suffix that begins a form, an
unfinished escape or dump line), so a prompt or a progress line is passed on at once,
while a value written in pieces is still seen whole. Memory and time are linear in the
total size of the secrets: forms are searched by fixed-length anchors, and no set of
prefixes is built.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from service.redaction.engines import Buffer, Finder
from service.redaction.forms import MIN_VALUE_LEN, secret_forms
from service.redaction.match import FormSet, Match, Search, analyze

__all__ = [
    "MIN_VALUE_LEN",
    "Scrubber",
    "ScrubStream",
    "Search",
    "scrub_fd",
    "write_all",
    "write_pieces",
]

_CHUNK = 1 << 20
# A read takes up to this much output that is ready at once (read_ready), unless told.
_GATHER = 4 << 20
# Reads at least this long are searched in two halves at once (engines release the GIL).
_SPLIT = 1 << 18
# mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# os.writev takes at most IOV_MAX (1024 on Linux) pieces per call.
_IOV_MAX = 1024
# The beginning of the current line kept as context for the views (dump lines, wrapped
# text); a longer line is no dump line, and wraps only after a long run of encoded text.
_CONTEXT = 4096
_PREVIOUS_LINE = 256

# What a stream passes on: views into the data read and placeholders.
Pieces = list[memoryview | bytes]


class Scrubber:
    """A compiled set of secret values and their placeholders. Holds values in memory;
    never shows them in its repr."""

    def __init__(
        self,
        secrets: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
        *,
        engine: str = "auto",
    ) -> None:
        """`secrets` maps a placeholder (e.g. a handle) to the value it stands for;
        `engine` is "auto" (the fastest available), "hyperscan" or "numpy"."""
        items = secrets.items() if isinstance(secrets, Mapping) else secrets
        self._placeholders: list[bytes] = []
        forms = []
        for placeholder, value in items:
            self._placeholders.append(placeholder)
            forms.append(secret_forms(value))
        self._forms = FormSet(forms, engine=engine)

    def __repr__(self) -> str:
        return f"Scrubber(forms={len(self._forms.texts)}, engine={self.engine})"

    @property
    def empty(self) -> bool:
        """True when no value is long enough to be scrubbed."""
        return not self._forms.texts

    @property
    def read_window(self) -> int:
        """The most output worth taking in one read (the engine's window)."""
        return self._forms.engine.window

    @property
    def engine(self) -> str:
        """Name of the search engine in use ("hyperscan" or "numpy")."""
        return self._forms.engine.name

    def placeholder(self, owner: int) -> bytes:
        return self._placeholders[owner]

    def finder(self) -> Finder:
        """A search function for one thread: engines may keep scratch space per scan."""
        return self._forms.engine.finder()

    @contextlib.contextmanager
    def parallel_search(self) -> Iterator[Search]:
        """A search for one stream that uses a second core: the dump view is worked out
        beside the text view, and (with an engine that searches without the GIL) a long
        read's two halves are searched at once. Plain `Search(finder())` on one core."""
        if (os.cpu_count() or 1) < 2 or self.empty:
            yield Search(self.finder())
            return
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="scrub") as pool:
            if not self._forms.engine.parallel:
                yield Search(self.finder(), pool)
                return
            front, back = self.finder(), self.finder()
            # An anchor starting in the front half ends within max_anchor - 1 bytes of it.
            overlap = self._forms.max_anchor - 1
            count = len(self._forms.anchors)

            def find_all(data: Buffer) -> list[int]:
                if len(data) < _SPLIT:
                    return front(data)
                middle = len(data) // 2
                # Views, not slices: a slice of bytes would copy the half it takes.
                whole = memoryview(data)
                later = pool.submit(back, whole[middle:])
                # Keys are start * count + index: below `limit`, they start in the front half.
                limit = middle * count
                found = [key for key in front(whole[: middle + overlap]) if key < limit]
                found.extend(key + limit for key in later.result())
                return found

            # The dump view runs on its own finder: scratch space is one scan's at a time.
            yield Search(find_all, pool, self.finder())

    def analyze(
        self, window: bytes, search: Search, *, base: int, line_start: bool, final: bool
    ) -> tuple[list[Match], int]:
        """Matches in window[base:] and where holding back begins (match.analyze)."""
        return analyze(self._forms, search, window, base=base, line_start=line_start, final=final)

    def find(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Non-overlapping matches in a complete text as (start, end, placeholder),
        leftmost first and longest at each start."""
        matches, _ = self.analyze(data, Search(self.finder()), base=0, line_start=True, final=True)
        return [(m.start, m.end, self._placeholders[m.owner]) for m in matches]

    def scrub(self, data: bytes) -> bytes:
        """Scrub a complete text (no more data follows)."""
        stream = ScrubStream(self)
        return stream.feed(data) + stream.finish()

    def stream(self) -> ScrubStream:
        """A scrubbing state for one stream of output."""
        return ScrubStream(self)


class ScrubStream:
    """Scrubbing state of one output stream: the held part, and the beginning of the
    current line already passed on (context for the views)."""

    def __init__(self, scrubber: Scrubber, search: Search | None = None) -> None:
        self._scrubber = scrubber
        self._search = search or Search(scrubber.finder())
        self._held = b""
        self._context = b""
        self._line_start = True

    def __repr__(self) -> str:
        return f"ScrubStream(held={len(self._held)})"

    @property
    def held(self) -> int:
        """Bytes held back, waiting for more output."""
        return len(self._held)

    def feed(self, data: Buffer) -> bytes:
        """Take the next piece of the stream; return what is safe to pass on now."""
        return b"".join(self.feed_pieces(data))

    def finish(self) -> bytes:
        """End of stream: whatever is held can no longer grow into a value."""
        return b"".join(self._drain((), final=True))

    def feed_pieces(self, data: Buffer, *more: Buffer) -> Pieces:
        """`feed`, as pieces to write in order (no copy of the passed-on data). `more`:
        further parts read at once, taken as joined to `data` (the parts are joined once,
        with the held part, rather than joined and then copied again)."""
        if self._scrubber.empty:
            return [bytes(part) for part in (data, *more) if part]
        return self._drain((data, *more), final=False)

    def finish_pieces(self) -> Pieces:
        """`finish`, as pieces to write in order."""
        return self._drain((), final=True)

    def snapshot(self) -> tuple[bytes, bytes, bool]:
        """The state, to go back to with `restore`."""
        return self._held, self._context, self._line_start

    def restore(self, state: tuple[bytes, bytes, bool]) -> None:
        self._held, self._context, self._line_start = state

    def joined_with(self, data: bytes) -> tuple[bytes, int] | None:
        """A value whose beginning is this stream's whole held part and whose rest begins
        `data` (the next output of another stream of the same process): the placeholder,
        and how much of `data` the value covers. This stream then passes the placeholder
        on in place of its held part."""
        if not self._held or self._scrubber.empty:
            return None
        window = self._context + self._held + data
        base = len(self._context)
        boundary = base + len(self._held)
        matches, _ = self._scrubber.analyze(
            window, self._search, base=base, line_start=self._line_start, final=False
        )
        if not matches or matches[0].start != base or matches[0].end <= boundary:
            return None
        placeholder = self._scrubber.placeholder(matches[0].owner)
        self._held = b""
        self._advance(self._context + placeholder, len(self._context) + len(placeholder))
        return placeholder, matches[0].end - boundary

    def passed_on(self, text: bytes) -> None:
        """Record `text` as passed on (a placeholder written for this stream elsewhere)."""
        window = self._context + text
        self._advance(window, len(window))

    def _drain(self, parts: tuple[Buffer, ...], *, final: bool) -> Pieces:
        window = b"".join((self._context, self._held, *parts))
        base = len(self._context)
        if len(window) == base:
            return []
        matches, hold = self._scrubber.analyze(
            window, self._search, base=base, line_start=self._line_start, final=final
        )
        view = memoryview(window)
        out: Pieces = []
        pos = base
        for match in matches:
            if match.start > pos:
                out.append(view[pos : match.start])
            out.append(self._scrubber.placeholder(match.owner))
            pos = match.end
        cut = max(pos, hold)
        if cut > pos:
            out.append(view[pos:cut])
        self._held = window[cut:]
        self._advance(window, cut)
        return out

    def _advance(self, window: bytes, cut: int) -> None:
        """window[:cut] has been passed on: keep the current line's beginning as context,
        and the line before it when it is short (a narrow wrap is joined only after a line
        as long as the one it continues)."""
        line = window.rfind(b"\n", 0, cut)
        if line >= 0:
            previous = window.rfind(b"\n", 0, line)
            if previous >= 0 and line - previous <= _PREVIOUS_LINE:
                self._context = window[previous + 1 : cut]
            elif previous < 0 and line <= _PREVIOUS_LINE and self._line_start:
                self._context = window[:cut]
            else:
                self._context = window[line + 1 : cut]
            self._line_start = True
        else:
            self._context = window[:cut]
        if len(self._context) > _CONTEXT:
            self._context = self._context[-_CONTEXT:]
            self._line_start = False


def grow_pipe(fd: int, size: int = _CHUNK) -> None:
    """Ask for a bigger pipe buffer: a pipe holds 64 KiB by default, and one read (and the
    engine's per-call cost) per 64 KiB costs more than the scan itself. 1 MiB is the
    unprivileged maximum; nothing happens where `fd` is not a pipe."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


def write_all(fd: int, data: Buffer) -> None:
    """os.write until everything is written (pipes take partial writes)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_pieces(fd: int, pieces: Pieces) -> None:
    """os.writev `pieces` in order until all are written, without joining them first."""
    first = 0
    while first < len(pieces):
        batch = pieces[first : first + _IOV_MAX]
        written = os.writev(fd, batch)
        for piece in batch:
            if written < len(piece):
                # A partial write stops inside this piece: resume from where it stopped.
                pieces[first] = memoryview(piece)[written:]
                break
            written -= len(piece)
            first += 1


def keep_freed_buffers() -> None:
    """Let freed megabyte buffers stay in the heap for the next read. glibc hands blocks of
    128 KiB and more straight back to the kernel, so each read's few fresh 1 MiB buffers
    (the window, its text views) cost a page fault per 4 KiB: 96,000 per 100 MB, a third of
    the scrubbing time. Elsewhere than glibc: no change."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)


def read_ready(fd: int, chunk: int, poller: select.poll, *, limit: int = _GATHER) -> list[bytes]:
    """os.read(fd, chunk); when that fills `chunk` and more is ready at once, further reads,
    up to `limit` bytes in all; the parts read, in order (empty at EOF). Scrubbing costs a
    little per read besides its cost per byte, and a pipe holds 1 MiB at most: a fast
    writer's output is taken in larger windows, while a read that finds the pipe empty
    returns what it has without waiting (a prompt is passed on at once). The parts are not
    joined here: the scrubber joins them once, with what it holds back."""
    data = os.read(fd, chunk)
    if not data:
        return []
    parts = [data]
    if len(data) < chunk:
        return parts
    total = len(data)
    while total < limit and poller.poll(0):
        more = os.read(fd, chunk)
        if not more:
            # At EOF, which the next read reports again.
            break
        parts.append(more)
        total += len(more)
        if len(more) < chunk:
            # Drained.
            break
    return parts


def scrub_fd(scrubber: Scrubber, in_fd: int, out_fd: int, *, chunk: int = _CHUNK) -> None:
    """Copy `in_fd` to `out_fd` until EOF, scrubbing on the way. Nothing touches disk."""
    grow_pipe(in_fd)
    keep_freed_buffers()
    poller = select.poll()
    poller.register(in_fd, select.POLLIN)
    with scrubber.parallel_search() as search:
        stream = ScrubStream(scrubber, search)
        limit = max(chunk, scrubber.read_window)
        while parts := read_ready(in_fd, chunk, poller, limit=limit):
            write_pieces(out_fd, stream.feed_pieces(*parts))
        write_pieces(out_fd, stream.finish_pieces())
