"""Where the output taken as it is can show a match that the decoded view does not.

The scrubber searches two text views when a read holds escapes: the output with escapes
decoded, and the output as it is (a `%`, `\\` or `&` just before a value can turn the
value's first characters into an escape). Away from the escapes the two views are the
same bytes, so a match there is found by the decoded view already, with the same output
span and the same verdict on the line breaks it crosses. The as-is view only needs
searching near the escapes: this module finds those regions, so that a read with a few
escapes costs a search of a few kilobytes instead of a second search of the whole read.

A match of the as-is view that the decoded view may lack

* overlaps an escape: it starts inside it (its anchor begins there), or covers the
  escape's first byte, so its form holds an escape introducer (`%`, `\\`, `&`) at that
  distance from its start: at most `reach` bytes (the forms' furthest introducer, at least
  an anchor's length) of text before the escape;
* or begins in a line whose context decides differently: whether a line break may wrap a
  match looks at the line the match begins in and the line before it, and an escape in
  either reads differently in the two views.

So a region runs from `reach` text bytes before the escape's line to an anchor's length
past the second line after it. Text bytes are counted without `\\r` and `\\n`, as the view
removes them.
"""

from __future__ import annotations

from collections.abc import Sequence

# Lines after an escape's own line whose matches may read the escape's line as context
# (the match's own line and the one before it), with one to spare for `\r`-only breaks
# inside a line counted by `\n`.
_LINES_AFTER = 2


def text_bytes_before(window: bytes, end: int, text_bytes: int) -> int:
    """The greatest start <= end with at least `text_bytes` bytes other than line breaks
    in window[start:end], or 0."""
    start = end
    missing = text_bytes
    while missing > 0 and start > 0:
        step = max(0, start - missing)
        breaks = window.count(b"\n", step, start) + window.count(b"\r", step, start)
        missing -= start - step - breaks
        start = step
    return start


def _ahead(window: bytes, start: int, text_bytes: int) -> int:
    """The least end >= start with at least `text_bytes` bytes other than line breaks in
    window[start:end], or len(window)."""
    end = start
    missing = text_bytes
    size = len(window)
    while missing > 0 and end < size:
        step = min(size, end + missing)
        breaks = window.count(b"\n", end, step) + window.count(b"\r", end, step)
        missing -= step - end - breaks
        end = step
    return end


def as_is_regions(
    window: bytes, starts: Sequence[int], ends: Sequence[int], *, reach: int, anchor: int
) -> list[tuple[int, int]]:
    """Output spans, sorted and disjoint, outside of which the as-is view of `window` finds
    no match that the decoded view misses (see the module docstring). `starts`/`ends`:
    the escapes, left to right; `reach`: how far before an escape a match covering it may
    begin, in text bytes; `anchor`: the longest anchor."""
    regions: list[tuple[int, int]] = []
    size = len(window)
    line_end = -1
    for start, end in zip(starts, ends, strict=True):
        if start < line_end:
            # Same line as the escape before: its region already reaches as far.
            continue
        line_start = window.rfind(b"\n", 0, start) + 1
        first = text_bytes_before(window, line_start, reach)
        line_end = window.find(b"\n", end)
        stop = size if line_end < 0 else line_end + 1
        line_end = stop
        for _ in range(_LINES_AFTER):
            if stop >= size:
                break
            found = window.find(b"\n", stop)
            stop = size if found < 0 else found + 1
        last = _ahead(window, stop, anchor)
        if regions and first <= regions[-1][1]:
            regions[-1] = (regions[-1][0], max(regions[-1][1], last))
        else:
            regions.append((first, last))
    return regions
