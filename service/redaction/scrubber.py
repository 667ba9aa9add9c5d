"""Streaming secret scrubber: replaces every known value — and its base64, URL-encoded, hex
and JSON-escaped forms — with a placeholder (the secret's handle), also when a value is
split across reads.

The search for all forms at once is done by an engine (redact_engines.py): hyperscan where
its wheel installs, a numpy q-gram filter elsewhere. Engines report every occurrence; this
module picks among them (leftmost, longest at each start), so output does not depend on the
engine.

Streaming holds back only the longest suffix of the data that is a proper prefix of some
pattern, so ordinary output (a prompt, a progress line) is never delayed, while a value
written in two pieces is still seen whole.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from service.redaction.engines import Buffer, Finder, build_engine

# Values shorter than this are not scrubbed: a 1–3 byte "secret" would match everywhere.
MIN_VALUE_LEN = 4
# Derived forms (base64 slices, lines of a multi-line value) shorter than this are skipped,
# for the same reason.
MIN_FORM_LEN = 8
MIN_LINE_LEN = 16
_CHUNK = 1 << 20
# Reads at least this long are searched in two halves at once (engines release the GIL).
_SPLIT = 1 << 18
# os.writev takes at most IOV_MAX (1024 on Linux) pieces per call.
_IOV_MAX = 1024

# Non-overlapping matches as (start, end, replacement), leftmost first.
Matches = list[tuple[int, int, bytes]]


def secret_forms(value: bytes) -> list[bytes]:
    """Every byte string that would reveal `value` if printed: the value itself, base64
    (standard and URL-safe, at each of the three alignments a value can have inside a
    longer base64 text), URL-encoding, hex, JSON escaping and each long line of a
    multi-line value."""
    if len(value) < MIN_VALUE_LEN:
        return []
    forms = {value}
    derived: set[bytes] = set()
    for encoded in (base64.b64encode(value), base64.urlsafe_b64encode(value)):
        derived.add(encoded)
        derived.add(encoded.rstrip(b"="))
    for skip in range(3):
        # Whole 3-byte groups encode to the same 4 characters whatever surrounds them.
        whole = value[skip:]
        whole = whole[: len(whole) // 3 * 3]
        derived.add(base64.b64encode(whole))
        derived.add(base64.urlsafe_b64encode(whole))
    derived.add(urllib.parse.quote(value, safe="").encode())
    derived.add(urllib.parse.quote_plus(value, safe="").encode())
    derived.add(urllib.parse.quote(value, safe="/").encode())
    hexed = binascii.hexlify(value)
    derived.update((hexed, hexed.upper()))
    try:
        derived.add(json.dumps(value.decode())[1:-1].encode())
        derived.add(json.dumps(value.decode(), ensure_ascii=False)[1:-1].encode())
    except UnicodeDecodeError:
        pass
    if b"\n" in value:
        derived.update(line.strip() for line in value.splitlines() if len(line) >= MIN_LINE_LEN)
    forms.update(form for form in derived if len(form) >= MIN_FORM_LEN)
    return sorted(forms, key=len, reverse=True)


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
        by_text: dict[bytes, bytes] = {}
        for replacement, value in items:
            for form in secret_forms(value):
                # Two secrets sharing a form (one value inside another): the first wins.
                by_text.setdefault(form, replacement)
        # Longest first: then sorting occurrence keys (start, index) puts the longest
        # pattern first at each start.
        texts = sorted(by_text, key=len, reverse=True)
        self._lengths = [len(text) for text in texts]
        self._replacements = [by_text[text] for text in texts]
        self.max_len = max(self._lengths, default=0)
        self.min_len = min(self._lengths, default=0)
        self._prefixes = {text[:k] for text in texts for k in range(1, len(text))}
        self._engine = build_engine(texts, engine)

    def __repr__(self) -> str:
        return f"Scrubber(patterns={len(self._lengths)}, engine={self.engine})"

    @property
    def empty(self) -> bool:
        return not self._lengths

    @property
    def engine(self) -> str:
        """Name of the search engine in use ("hyperscan" or "numpy")."""
        return self._engine.name

    def finder(self) -> Callable[[Buffer], Matches]:
        """A `find` for one thread: engines may keep scratch space per scan in progress."""
        return self._matcher(self._engine.finder())

    def _matcher(self, find_all: Finder) -> Callable[[Buffer], Matches]:
        lengths = self._lengths
        replacements = self._replacements
        min_len = self.min_len
        count = len(lengths)

        def find(data: Buffer) -> Matches:
            if not lengths or len(data) < min_len:
                return []
            found = find_all(data)
            found.sort()
            matches: Matches = []
            end = 0
            for key in found:
                start, index = divmod(key, count)
                if start < end:
                    continue
                end = start + lengths[index]
                matches.append((start, end, replacements[index]))
            return matches

        return find

    @contextlib.contextmanager
    def parallel_finder(self) -> Iterator[Callable[[Buffer], Matches]]:
        """A `find` that searches a long buffer's two halves on two threads, with an engine
        that searches without the GIL: up to half the wall time per read on a machine with a
        spare core. Otherwise the plain `finder()`."""
        if (os.cpu_count() or 1) < 2 or not self._lengths or not self._engine.parallel:
            yield self.finder()
            return
        front, back = self._engine.finder(), self._engine.finder()
        # An occurrence starting in the front half ends within max_len - 1 bytes after it.
        overlap = self.max_len - 1
        count = len(self._lengths)

        def find_all(data: Buffer) -> list[int]:
            if len(data) < _SPLIT:
                return front(data)
            middle = len(data) // 2
            later = pool.submit(back, data[middle:])
            # Keys are start * count + index: those below `limit` start in the front half.
            limit = middle * count
            found = [key for key in front(data[: middle + overlap]) if key < limit]
            found.extend(key + limit for key in later.result())
            return found

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrub") as pool:
            yield self._matcher(find_all)

    def find(self, data: Buffer) -> Matches:
        """Non-overlapping matches in `data` as (start, end, replacement), leftmost first
        and longest at each start."""
        return self.finder()(data)

    def held_suffix(self, data: Buffer) -> int:
        """Length of the longest suffix of `data` that could still grow into a pattern."""
        tail = bytes(data[-(self.max_len - 1) :]) if self.max_len > 1 else b""
        for length in range(len(tail), 0, -1):
            if tail[-length:] in self._prefixes:
                return length
        return 0

    def scrub(self, data: bytes) -> bytes:
        """Scrub a complete text (no more data follows)."""
        stream = ScrubStream(self)
        return stream.feed(data) + stream.finish()

    def stream(self) -> ScrubStream:
        return ScrubStream(self)


def _pieces(
    matches: Matches, data: memoryview, boundary: int
) -> tuple[list[memoryview | bytes], int]:
    """What may be passed on of `data` when everything from `boundary` on may still grow
    into a value: the output pieces (views into `data` and placeholders) and the length of
    `data` they consume."""
    out: list[memoryview | bytes] = []
    pos = 0
    for start, end, replacement in matches:
        if start >= boundary:
            break
        if start > pos:
            out.append(data[pos:start])
        out.append(replacement)
        pos = end
    cut = max(pos, boundary)
    if cut > pos:
        out.append(data[pos:cut])
    return out, cut


class ScrubStream:
    """Scrubbing state of one output stream: a working buffer whose front is the held part."""

    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber
        self._find = scrubber.finder()
        self._buf = bytearray()

    def __repr__(self) -> str:
        return f"ScrubStream(held={len(self._buf)})"

    def feed(self, data: Buffer) -> bytes:
        """Take the next piece of the stream; return what is safe to pass on now."""
        if self._scrubber.empty:
            return bytes(data)
        self._buf += data
        return self._drain(final=False)

    def finish(self) -> bytes:
        """End of stream: whatever is held can no longer grow into a value."""
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> bytes:
        buf = self._buf
        if not buf:
            return b""
        boundary = len(buf) if final else len(buf) - self._scrubber.held_suffix(buf)
        with memoryview(buf) as view:
            pieces, cut = _pieces(self._find(view), view, boundary)
            out = b"".join(pieces)
            del pieces
        # bytearray drops its front in O(1): the held part stays without a copy.
        del buf[:cut]
        return out


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


def write_pieces(fd: int, pieces: list[memoryview | bytes]) -> None:
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


def scrub_fd(scrubber: Scrubber, in_fd: int, out_fd: int, *, chunk: int = _CHUNK) -> None:
    """Copy `in_fd` to `out_fd` until EOF, scrubbing on the way. Nothing touches disk.

    Reads go into one reused buffer behind the held tail of the previous read, and the
    output is written straight from it (writev), so the data is never copied in user space.
    """
    grow_pipe(in_fd)
    # The held tail is shorter than the longest pattern; it sits in front of each read.
    block = bytearray(scrubber.max_len + chunk)
    held = 0
    with scrubber.parallel_finder() as find, memoryview(block) as view:
        while True:
            size = os.readv(in_fd, [view[held : held + chunk]])
            if not size:
                break
            end = held + size
            data = view[:end]
            if scrubber.empty:
                write_all(out_fd, data)
                continue
            boundary = end - scrubber.held_suffix(data)
            pieces, cut = _pieces(find(data), data, boundary)
            write_pieces(out_fd, pieces)
            del pieces
            held = end - cut
            # A few bytes at most; copied out first because the ranges may overlap.
            view[:held] = bytes(view[cut:end])
        if held:
            write_pieces(out_fd, _pieces(find(view[:held]), view[:held], held)[0])
