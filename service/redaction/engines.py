"""Multi-literal search engines behind the scrubber: every occurrence of every pattern.

An engine reports all occurrences, overlapping ones included, each as one int
`start * len(patterns) + index` (cheap to produce in a per-match callback and to sort);
choosing among them (leftmost, longest at each start) is the scrubber's job, so every
engine yields the same output by construction.

* `hyperscan` — Intel's SIMD multi-literal matcher (the PyPI `hyperscan` wheel, x86-64),
  about 1 GB/s for hundreds of patterns;
* `numpy` — the portable fallback: a sampled q-gram filter. Python's `re` tries each
  branch of an alternation at every byte (under 1 MB/s for a few hundred secret forms), so:
  every pattern is at least `min_len` bytes long; with q-grams of `q = min(8, min_len)`
  bytes read every `stride <= min_len - q + 1` bytes, each occurrence of a pattern holds
  exactly one sample that begins within its first `stride` bytes, so only the q-grams at
  those offsets are indexed; a sample is hashed into a bit table of the indexed q-grams in
  a handful of vectorised numpy operations over the whole buffer, and the rare hits are
  verified exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

try:
    # The wheel exists for x86-64 only (pyproject.toml's environment marker).
    import hyperscan  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # no wheel for this platform: the numpy engine does the work
    hyperscan = None  # type: ignore[assignment,unused-ignore]

Buffer = bytes | bytearray | memoryview
# All occurrences in a buffer as `start * len(patterns) + index`, in no particular order.
Finder = Callable[[Buffer], list[int]]

_TABLE_BITS = 23
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)
_THREE = np.uint64(3)
_SEVEN = np.uint64(7)


class Engine(Protocol):
    name: str
    # True when a search runs without the GIL, so two threads search twice as fast.
    parallel: bool
    # The most output worth searching at once: a longer read costs less per byte, until
    # the engine's own work arrays for it grow large.
    window: int

    def finder(self) -> Finder:
        """A search function for one thread (engines may keep per-thread scratch state)."""
        ...


def available_engines() -> tuple[str, ...]:
    """Engine names usable on this machine, fastest first."""
    return ("hyperscan", "numpy") if hyperscan is not None else ("numpy",)


def build_engine(patterns: Sequence[bytes], name: str = "auto") -> Engine:
    """Compile `patterns` (each at least 1 byte) for engine `name`, or the fastest one that
    works here for "auto"."""
    if name not in ("auto", *available_engines()):
        raise ValueError(f"engine {name!r} is not available here: {available_engines()}")
    if name in ("auto", "hyperscan") and hyperscan is not None and patterns:
        try:
            return HyperscanEngine(patterns)
        except hyperscan.error:
            # E.g. a CPU without the SIMD level the library needs: fall back, unless asked.
            if name == "hyperscan":
                raise
    return QGramEngine(patterns)


class HyperscanEngine:
    """Hyperscan block-mode database of the patterns as literals."""

    name = "hyperscan"
    parallel = True
    # No work arrays: the views of a window (a few copies of it) are all the memory.
    window = 4 << 20

    def __init__(self, patterns: Sequence[bytes]) -> None:
        assert hyperscan is not None
        self._lengths = [len(p) for p in patterns]
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        ids = list(range(len(patterns)))
        if any(b"\0" in p for p in patterns):
            # The binding measures pure literals with strlen(): spell bytes as \xHH instead.
            escaped = ["".join(f"\\x{b:02x}" for b in p).encode() for p in patterns]
            self._db.compile(expressions=escaped, ids=ids, elements=len(patterns))
        else:
            self._db.compile(
                expressions=list(patterns), ids=ids, elements=len(patterns), literal=True
            )

    def __repr__(self) -> str:
        return f"HyperscanEngine(patterns={len(self._lengths)})"

    def finder(self) -> Finder:
        assert hyperscan is not None
        # Scratch space is per scan in progress: stdout and stderr pumps each get their own.
        scratch = hyperscan.Scratch(self._db)
        lengths = self._lengths
        scan = self._db.scan

        count = len(lengths)

        def find(data: Buffer) -> list[int]:
            found: list[int] = []
            append = found.append

            def on_match(index: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
                # Literals have one length, so the end locates the start (no SOM tracking).
                append((end - lengths[index]) * count + index)

            scan(cast(bytes, data), on_match, scratch=scratch)
            return found

        return find


class QGramEngine:
    """The sampled q-gram filter over numpy (see the module docstring)."""

    name = "numpy"
    # The verification loop is Python: a second thread mostly waits for the GIL (measured
    # slower, not faster).
    parallel = False
    # Its arrays grow with the bytes searched: measured 43 MiB above idle with 1 MiB
    # reads, 158 MiB with 4 MiB (bench/redact).
    window = 1 << 20

    def __init__(self, patterns: Sequence[bytes]) -> None:
        self._patterns = list(patterns)
        self._min_len = min((len(p) for p in patterns), default=0)
        self._q = self._stride = 0
        self._grams: dict[int, list[tuple[int, int]]] = {}
        self._table_bits = _TABLE_BITS
        self._bits = np.zeros(1 << (_TABLE_BITS - 3), dtype=np.uint8)
        if not self._patterns:
            return
        q = min(8, self._min_len)
        self._q = q
        stride = self._min_len - q + 1
        # A stride that is a multiple of 8 reads aligned words straight from the buffer.
        self._stride = stride = stride - stride % 8 if stride >= 8 else stride
        self._mask = np.uint64((1 << (8 * q)) - 1)
        for index, text in enumerate(self._patterns):
            # The one sample inside an occurrence that starts in its first `stride` bytes
            # is the one that finds it; grams further in would only add duplicate hits.
            for offset in range(stride):
                gram = int.from_bytes(text[offset : offset + q], "little")
                self._grams.setdefault(gram, []).append((index, offset))
        keys = np.fromiter(self._grams.keys(), dtype=np.uint64, count=len(self._grams))
        # About 1 set bit in 256 (few false hits to verify), and a small table for a few
        # secrets, which builds in microseconds rather than the 8 Mbit table's milliseconds.
        self._table_bits = min(_TABLE_BITS, max(12, (len(keys) << 8).bit_length()))
        present = np.zeros(1 << self._table_bits, dtype=np.bool_)
        present[self._hash(keys)] = True
        # A bit table (1 MiB at most) stays in cache where a byte table would not.
        self._bits = np.packbits(present, bitorder="little")

    def __repr__(self) -> str:
        return f"QGramEngine(patterns={len(self._patterns)})"

    def _hash(self, grams: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        shift = np.uint64(64 - self._table_bits)
        hashed: npt.NDArray[np.uint64] = (grams * _HASH_MULT) >> shift
        return hashed

    def finder(self) -> Finder:
        return self.find

    def find(self, data: Buffer) -> list[int]:
        """All occurrences in `data` as `start * len(patterns) + index`."""
        if not self._patterns or len(data) < self._min_len:
            return []
        q, stride = self._q, self._stride
        size = len(data)
        count = (size - q) // stride + 1
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
        found: list[int] = []
        grams = self._grams
        patterns = self._patterns
        view = memoryview(data)
        for sample in hits.tolist():
            pos = sample * stride
            for index, offset in grams.get(int.from_bytes(view[pos : pos + q], "little"), ()):
                start = pos - offset
                text = patterns[index]
                end = start + len(text)
                # `end <= size`: the zero padding behind short-gram data is not data.
                if start >= 0 and end <= size and view[start:end] == text:
                    found.append(start * len(patterns) + index)
        return found
