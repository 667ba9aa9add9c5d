"""The line structure of a read: where its line breaks are, its text without them, and
which of its lines may be dump lines.

Every read needs all three (the text view drops line breaks, its map back to the output
needs their offsets, the dump view parses the lines that look like dump lines). The
compiled line pass (compiled.py, _fastscan.c) finds them in one pass over the read without
the GIL; the pure path below is the reference and the fallback: numpy `flatnonzero` for
the breaks, `bytes.replace` for the text, dumps.candidate_lines for the dump lines, each
done when first needed. Both give the same values (tests/agent/test_agent_redact_compiled.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from service.redaction import compiled
from service.redaction.views import BREAK_VALUES, Escapes, remove_breaks


class Lines:
    """The line structure of `window`: `breaks`, the offsets of its `\\r` and `\\n`;
    `newlines`, those of its `\\n`; the text without breaks (`text_before`); and, from the
    compiled pass, `candidates`: the starts of every line (an unfinished last one too) that
    may be a dump line (None: dumps.dump_segments finds them itself)."""

    __slots__ = ("_text", "_window", "breaks", "candidates", "newlines")

    def __init__(
        self,
        window: bytes,
        breaks: npt.NDArray[np.int64],
        newlines: npt.NDArray[np.int64],
        *,
        text: bytes | None = None,
        candidates: list[int] | None = None,
    ) -> None:
        self._window = window
        self.breaks = breaks
        self.newlines = newlines
        self._text = text
        self.candidates = candidates

    def __repr__(self) -> str:
        return f"Lines(size={len(self._window)}, breaks={len(self.breaks)})"

    def text_before(self, end: int) -> bytes:
        """window[:end] without line breaks."""
        if self._text is None:
            if end < len(self._window):
                return remove_breaks(self._window[:end])
            # Kept: the views of a read with escapes take their text between them from it.
            self._text = remove_breaks(self._window)
        if end >= len(self._window):
            return self._text
        return self._text[: end - int(np.searchsorted(self.breaks, end))]

    def text_of(self, escapes: Escapes) -> bytes:
        """`escapes.text` without line breaks (`escapes.source` is a prefix of the window):
        equal to remove_breaks(escapes.text), but the text between escapes is taken from
        the window's text without breaks, so the read is not passed over once more. An
        escape's own characters hold no line break (views.py); what it decodes to may."""
        source = escapes.source
        if not escapes.count:
            return self.text_before(len(source))
        whole = memoryview(self.text_before(len(self._window)))
        # Each run of text between escapes, as offsets in the window, then in the text.
        edges = np.empty(2 * escapes.count + 2, dtype=np.int64)
        edges[0], edges[-1] = 0, len(source)
        edges[1:-1:2] = escapes.starts
        edges[2:-1:2] = escapes.ends
        edges -= np.searchsorted(self.breaks, edges)
        bounds = edges.tolist()
        pieces: list[bytes | memoryview] = [b""] * (2 * escapes.count + 1)
        pieces[0::2] = [whole[bounds[k] : bounds[k + 1]] for k in range(0, len(bounds), 2)]
        # An escape that stands for a line break stands for it alone (views.BREAK_VALUES).
        pieces[1::2] = [b"" if value in BREAK_VALUES else value for value in escapes.decoded]
        return b"".join(pieces)


def scan_lines(window: bytes) -> Lines:
    """The line structure of `window`, by the compiled pass where it is built."""
    fast = compiled.fastscan
    if fast is not None:
        packed_breaks, packed_newlines, text, packed_candidates = fast.scan_lines(window)
        return Lines(
            window,
            np.frombuffer(packed_breaks, dtype=np.int64),
            np.frombuffer(packed_newlines, dtype=np.int64),
            text=text,
            candidates=np.frombuffer(packed_candidates, dtype=np.int64).tolist(),
        )
    array = np.frombuffer(window, dtype=np.uint8)
    breaks: npt.NDArray[np.int64]
    if b"\r" in window:
        # One pass over the read for both kinds of break (the text view needs both).
        breaks = np.flatnonzero((array == 10) | (array == 13))
        return Lines(window, breaks, breaks[array[breaks] == 10])
    breaks = np.flatnonzero(array == 10)
    return Lines(window, breaks, breaks)
