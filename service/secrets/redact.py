"""Streaming secret scrubber: replaces every known value — and its base64, URL-encoded, hex
and JSON-escaped forms — with a placeholder (the secret's handle), also when a value is
split across reads.

Python's `re` tries each branch of an alternation at every byte (under 1 MB/s for a few
hundred secret forms), so the search is a sampled q-gram filter over numpy instead:

* every pattern is at least `min_len` bytes long; with q-grams of `q = min(8, min_len)`
  bytes read every `stride = min_len - q + 1` bytes, each occurrence of a pattern contains
  at least one sampled q-gram completely;
* a sampled q-gram is hashed into a bit table built from every q-gram of every pattern, in
  a handful of vectorised numpy operations over the whole buffer;
* the rare hits are verified exactly against the patterns that hold that q-gram.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Values shorter than this are not scrubbed: a 1–3 byte "secret" would match everywhere.
MIN_VALUE_LEN = 4
# Derived forms (base64 slices, lines of a multi-line value) shorter than this are skipped,
# for the same reason.
MIN_FORM_LEN = 8
MIN_LINE_LEN = 16
_TABLE_BITS = 23
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)
_CHUNK = 1 << 20
_THREE = np.uint64(3)
_SEVEN = np.uint64(7)


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


@dataclass(frozen=True)
class _Pattern:
    text: bytes
    replacement: bytes


class Scrubber:
    """A compiled set of secret values and their placeholders. Holds values in memory;
    never shows them in its repr."""

    def __init__(self, secrets: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]) -> None:
        """`secrets` maps a placeholder (e.g. a handle) to the value it stands for."""
        items = secrets.items() if isinstance(secrets, Mapping) else secrets
        by_text: dict[bytes, bytes] = {}
        for replacement, value in items:
            for form in secret_forms(value):
                # Two secrets sharing a form (one value inside another): the first wins.
                by_text.setdefault(form, replacement)
        self._patterns = [_Pattern(text, rep) for text, rep in by_text.items()]
        self.max_len = max((len(p.text) for p in self._patterns), default=0)
        self.min_len = min((len(p.text) for p in self._patterns), default=0)
        self._prefixes = {p.text[:k] for p in self._patterns for k in range(1, len(p.text))}
        self._build_index()

    def __repr__(self) -> str:
        return f"Scrubber(patterns={len(self._patterns)})"

    @property
    def empty(self) -> bool:
        return not self._patterns

    def _build_index(self) -> None:
        self._q = self._stride = 0
        self._grams: dict[int, list[tuple[int, int]]] = {}
        self._bits = np.zeros(1 << (_TABLE_BITS - 3), dtype=np.uint8)
        if not self._patterns:
            return
        q = min(8, self.min_len)
        self._q = q
        stride = self.min_len - q + 1
        # A stride that is a multiple of 8 reads aligned words straight from the buffer.
        self._stride = stride - stride % 8 if stride >= 8 else stride
        self._mask = np.uint64((1 << (8 * q)) - 1)
        for index, pattern in enumerate(self._patterns):
            text = pattern.text
            for offset in range(len(text) - q + 1):
                gram = int.from_bytes(text[offset : offset + q], "little")
                self._grams.setdefault(gram, []).append((index, offset))
        keys = np.fromiter(self._grams.keys(), dtype=np.uint64, count=len(self._grams))
        present = np.zeros(1 << _TABLE_BITS, dtype=np.bool_)
        present[self._hash(keys)] = True
        # A bit table (1 MiB) stays in cache where a byte table would not.
        self._bits = np.packbits(present, bitorder="little")

    def _hash(self, grams: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        hashed: npt.NDArray[np.uint64] = (grams * _HASH_MULT) >> np.uint64(64 - _TABLE_BITS)
        return hashed

    def find(self, data: bytes | bytearray) -> list[tuple[int, int, bytes]]:
        """Non-overlapping matches in `data` as (start, end, replacement), leftmost first
        and longest at each start."""
        if not self._patterns or len(data) < self.min_len:
            return []
        q, stride = self._q, self._stride
        count = (len(data) - q) // stride + 1
        if q < 8:
            # Eight readable bytes behind every sample, the last ones too.
            data = bytes(data) + bytes(8)
        words: npt.NDArray[np.uint64]
        if stride % 8 == 0 and q == 8:
            words = np.frombuffer(data, dtype="<u8", count=len(data) // 8)[:: stride // 8]
        else:
            words = np.ndarray((count,), dtype="<u8", buffer=data, offset=0, strides=(stride,))
        if q < 8:
            words = words & self._mask
        slots = self._hash(words)
        cells = np.take(self._bits, slots >> _THREE)
        hits = np.flatnonzero((cells >> (slots & _SEVEN).astype(np.uint8)) & 1)
        if not hits.size:
            return []
        found: set[tuple[int, int]] = set()
        grams = self._grams
        patterns = self._patterns
        for sample in hits.tolist():
            pos = sample * stride
            gram = int.from_bytes(data[pos : pos + q], "little")
            for index, offset in grams.get(gram, ()):
                start = pos - offset
                text = patterns[index].text
                if start >= 0 and data.startswith(text, start):
                    found.add((start, index))
        matches: list[tuple[int, int, bytes]] = []
        end = 0
        for start, index in sorted(found, key=lambda f: (f[0], -len(patterns[f[1]].text))):
            if start < end:
                continue
            pattern = patterns[index]
            end = start + len(pattern.text)
            matches.append((start, end, pattern.replacement))
        return matches

    def held_suffix(self, data: bytes | bytearray) -> int:
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


class ScrubStream:
    """Scrubbing state of one output stream: a working buffer whose front is the held part."""

    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber
        self._buf = bytearray()

    def __repr__(self) -> str:
        return f"ScrubStream(held={len(self._buf)})"

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
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
        scrubber = self._scrubber
        boundary = len(buf) if final else len(buf) - scrubber.held_suffix(buf)
        out: list[bytes] = []
        pos = 0
        for start, end, replacement in scrubber.find(buf):
            if start >= boundary:
                break
            out.append(bytes(buf[pos:start]))
            out.append(replacement)
            pos = end
        cut = max(pos, boundary)
        out.append(bytes(buf[pos:cut]))
        # bytearray drops its front in O(1): the held part stays without a copy.
        del buf[:cut]
        return b"".join(out) if len(out) > 1 else out[0]


def write_all(fd: int, data: bytes) -> None:
    """os.write until everything is written (pipes take partial writes)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def scrub_fd(scrubber: Scrubber, in_fd: int, out_fd: int, *, chunk: int = _CHUNK) -> None:
    """Copy `in_fd` to `out_fd` until EOF, scrubbing on the way. Nothing touches disk."""
    # A pipe holds 64 KiB by default: one read (and a dozen numpy calls) per 64 KiB costs
    # more than the scan itself, so ask for 1 MiB (the unprivileged maximum).
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(in_fd, fcntl.F_SETPIPE_SZ, chunk)
    stream = scrubber.stream()
    block = bytearray(chunk)
    view = memoryview(block)
    while True:
        # readv into one reused buffer: no fresh megabyte allocation per read.
        size = os.readv(in_fd, [block])
        if not size:
            break
        safe = stream.feed(view[:size])
        if safe:
            write_all(out_fd, safe)
    tail = stream.finish()
    if tail:
        write_all(out_fd, tail)
