"""The scrubber's dump view: hex and character dumps read back into the bytes they show.

A dump interleaves a value's bytes with offsets and a text column (`xxd`, `hexdump -C`) or
spreads them over fixed-width cells (`od -c`), so no literal pattern follows a value
across its lines. Lines in these shapes are parsed instead, consecutive ones are joined
into one segment of bytes, and the values' plain forms are searched in the segments:

* hex with an offset: `xxd` (any `-g`, `-u`), `hexdump -C`, `od -tx1`;
* hex pairs with spaces, without an offset: `od -An -tx1`, `bytes.hex(" ")`;
* colon-separated hex lines (`openssl x509 -text`, fingerprints);
* C arrays (`xxd -i`: `0x74, 0x77,`);
* character dumps: `od -c`, `od -An -c` (`\\n`-style and octal cells).

A match covers the hex of its bytes and, on lines with a text column, the rest of the
line, whose column shows the same bytes again.

Lines are found without parsing every line: a vectorised look at the first bytes of each
line picks the few that could be dump lines (a superset of what the parser accepts).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

_HEX_DIGITS = b"0123456789abcdefABCDEF"
_OCTAL = b"01234567"
# Bytes of a line's start examined by the detector, and blanks looked past at most (an
# od -c line of a run of spaces starts with four per space).
_LOOK = 16
_MAX_INDENT = 64
# How far past a line's start the detector reads: the indent, a cell's lead and the byte
# after it, or _LOOK bytes.
_REACH = max(_MAX_INDENT + 2, _LOOK)

_HEX_A = re.compile(
    rb"(?P<lead>[ \t]*)(?P<off>[0-9A-Fa-f]{7,8}(?:: ?| {1,2}))?"
    rb"(?P<hex>(?:[0-9A-Fa-f]{2})+(?: (?:[0-9A-Fa-f]{2})+)*)(?P<tail>.*)",
    re.DOTALL,
)
# `hexdump -C` puts two spaces after the eighth byte.
_HEX_B = re.compile(
    rb"(?P<lead>[ \t]*)(?P<off>[0-9A-Fa-f]{7,8}(?:: ?| {1,2}))?"
    rb"(?P<hex>(?:[0-9A-Fa-f]{2})+(?: {1,2}(?:[0-9A-Fa-f]{2})+)*)(?P<tail>.*)",
    re.DOTALL,
)
_PAIR = re.compile(rb"[0-9A-Fa-f]{2}")
_PIPE_COLUMN = re.compile(rb" +\|(.*)\|[ \t]*", re.DOTALL)
_COLON = re.compile(rb"[ \t]*([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*):?[ \t]*")
_C_ARRAY = re.compile(rb"[ \t]*((?:0[xX][0-9A-Fa-f]{2}, ?)*0[xX][0-9A-Fa-f]{2}),?[ \t]*")
_C_BYTE = re.compile(rb"0[xX]([0-9A-Fa-f]{2})")
_OD_CHARS = re.compile(rb"(?:[0-7]{7})?((?:   [^ \r\n]|    |  \\[0abfnrtv]| [0-7]{3})+)")
_OD_ESCAPES = {
    ord("0"): 0,
    ord("a"): 7,
    ord("b"): 8,
    ord("t"): 9,
    ord("n"): 10,
    ord("v"): 11,
    ord("f"): 12,
    ord("r"): 13,
}
# A superset of the beginnings of the lines above: a line still being written that matches
# one of these is held until it ends (its bytes may begin a value).
_PARTIAL = (
    re.compile(rb"[ \t]*(?:[0-9A-Fa-f]{0,8}:)?[0-9A-Fa-f ]*(?:  .*| \|.*)?", re.DOTALL),
    re.compile(rb"[ \t]*[0-9A-Fa-f:]*"),
    re.compile(rb"[ \t]*[0-9A-Fa-fxX, ]*"),
    re.compile(
        rb"[0-7]{0,6}|(?:[0-7]{7})?(?:   [^ \r\n]|    |  \\[0abfnrtv]| [0-7]{3})*"
        rb"(?: {0,3}|   [^ \r\n]?|  \\| [0-7]{0,2})",
    ),
)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each byte's text starts and ends in a dump line, and whether a text column
    repeats the bytes further right. Lines of one dump share one layout."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    text_column: bool


# Layouts by shape: a dump's lines have a handful of shapes, computed once each.
_LAYOUTS: dict[tuple[object, ...], Layout] = {}
_LAYOUTS_MAX = 4096
_SHAPE = bytes.maketrans(_HEX_DIGITS, b"h" * len(_HEX_DIGITS))
_OD_CELLS: dict[bytes, int] = {}
for _byte in range(256):
    if 32 < _byte < 127:
        _OD_CELLS[b"   " + bytes([_byte])] = _byte
    _OD_CELLS[b" %03o" % _byte] = _byte
_OD_CELLS[b"    "] = 32
for _letter, _byte in _OD_ESCAPES.items():
    _OD_CELLS[b"  \\" + bytes([_letter])] = _byte


def _layout(key: tuple[object, ...], build: Callable[..., Layout], *args: object) -> Layout:
    layout = _LAYOUTS.get(key)
    if layout is None:
        if len(_LAYOUTS) >= _LAYOUTS_MAX:
            _LAYOUTS.clear()
        layout = _LAYOUTS[key] = build(*args)
    return layout


def _pairs_layout(line: bytes, begin: int, end: int, width: int, text_column: bool) -> Layout:
    starts = tuple(m.start() for m in _PAIR.finditer(line, begin, end))
    return Layout(starts, tuple(s + width for s in starts), text_column)


def _cells_layout(begin: int, end: int) -> Layout:
    starts = tuple(range(begin, end, 4))
    return Layout(starts, tuple(s + 4 for s in starts), False)


def _hex_line(line: bytes) -> tuple[bytes, Layout] | None:
    for pattern in (_HEX_A, _HEX_B):
        match = pattern.fullmatch(line)
        if match is None:
            continue
        hex_area = match.group("hex")
        if match.group("off") is None and b" " not in hex_area and not match.group("lead"):
            # A bare run of hex digits is plain hex text: the text view covers it.
            return None
        data = bytes.fromhex(hex_area.decode())
        tail = match.group("tail")
        text_column = True
        column = _PIPE_COLUMN.fullmatch(tail)
        if column is not None:
            if len(column.group(1)) != len(data):
                continue
        elif tail.strip(b" \t"):
            # xxd: two or more spaces, then exactly one character per byte.
            width = len(data)
            if len(tail) < width + 2 or tail[:-width].strip(b" "):
                continue
        else:
            text_column = False
        begin, end = match.span("hex")
        key = ("hex", begin, hex_area.translate(_SHAPE), text_column)
        return data, _layout(key, _pairs_layout, line, begin, end, 2, text_column)
    return None


def _colon_line(line: bytes) -> tuple[bytes, Layout] | None:
    match = _COLON.fullmatch(line)
    if match is None:
        return None
    begin, end = match.span(1)
    data = bytes.fromhex(match.group(1).replace(b":", b"").decode())
    return data, _layout(("colon", begin, end), _pairs_layout, line, begin, end, 2, False)


def _c_array_line(line: bytes) -> tuple[bytes, Layout] | None:
    match = _C_ARRAY.fullmatch(line)
    if match is None:
        return None
    found = list(_C_BYTE.finditer(line, *match.span(1)))
    data = bytes(int(m.group(1), 16) for m in found)
    return data, Layout(tuple(m.start() for m in found), tuple(m.end() for m in found), False)


def _od_chars_line(line: bytes) -> tuple[bytes, Layout] | None:
    match = _OD_CHARS.fullmatch(line)
    if match is None or not match.group(1).strip(b" "):
        return None
    begin, end = match.span(1)
    cells = _OD_CELLS
    data = bytes([cells[line[pos : pos + 4]] for pos in range(begin, end, 4)])

    return data, _layout(("od-c", begin, end), _cells_layout, begin, end)


def parse_dump_line(line: bytes) -> tuple[bytes, Layout] | None:
    """The bytes a complete dump line (without its line break) shows and where, or None."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        return None
    for parse in (_hex_line, _colon_line, _c_array_line, _od_chars_line):
        parsed = parse(line)
        if parsed is not None and parsed[0]:
            return parsed
    return None


def may_become_dump_line(line: bytes) -> bool:
    """Whether an unfinished line could still turn out to be a dump line."""
    return any(pattern.fullmatch(line) for pattern in _PARTIAL)


def _table(chars: bytes) -> npt.NDArray[np.bool_]:
    table = np.zeros(256, dtype=np.bool_)
    table[list(chars)] = True
    return table


_IS_HEX = _table(_HEX_DIGITS)
_IS_OCTAL = _table(_OCTAL)
_IS_BLANK = _table(b" \t")
_IS_END = _table(b"\r\n")
_IS_HEX_OR_BLANK = _table(_HEX_DIGITS + b" \t")


def candidate_lines(data: bytes, newlines: npt.NDArray[np.int64]) -> list[int]:
    """Start offsets of the complete lines of `data` that could be dump lines (every line
    `parse_dump_line` accepts, and few others). `newlines` holds the offsets of b"\\n"
    that end them.

    Each test looks at one column of the lines still in the running, so ordinary text
    (whose lines fail at their first bytes) costs a few small gathers per read."""
    if not len(newlines):
        return []
    arr = np.frombuffer(data, dtype=np.uint8)
    starts = np.concatenate((np.zeros(1, dtype=np.int64), newlines[:-1] + 1))
    if starts[-1] + _REACH > len(arr):
        # Past the end of the data reads as a line break.
        arr = np.frombuffer(data + b"\n" * _REACH, dtype=np.uint8)

    def column(
        rows: npt.NDArray[np.int64], offset: int | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.uint8]:
        picked: npt.NDArray[np.uint8] = arr[rows + offset]
        return picked

    # Every dump line begins with four hex digits ("hh hh", "hhhh", an offset, "0xhh": a
    # hex digit, a hex digit or x, a hex digit or separator, a hex digit), or with blanks.
    # Ordinary lines are dropped in one pass over the first bytes of all lines (a line
    # start is never past the end: each begins before the last line feed).
    starts = starts[_IS_HEX_OR_BLANK[arr[starts]]]
    first = arr[starts]
    indented = starts[_IS_BLANK[first]]
    rest = starts[_IS_HEX[first]]
    second = column(rest, 1)
    rest = rest[_IS_HEX[second] | ((second | 32) == ord("x"))]
    third = column(rest, 2)
    rest = rest[_IS_HEX[third] | (third == 32) | (third == ord(":"))]
    rest = rest[_IS_HEX[column(rest, 3)]]
    # After blanks: two hex digits or "0x" (od -An -tx1, openssl, xxd -i), or an od -c
    # cell after whole blank cells ("   t", "  \\n", " 001", each after "    "s).
    blanks = np.ones(len(indented), dtype=np.int64)
    going = np.ones(len(indented), dtype=np.bool_)
    for offset in range(1, _MAX_INDENT):
        going &= _IS_BLANK[column(indented, offset)]
        if not going.any():
            break
        blanks += going
    lead = column(indented, blanks)
    after = column(indented, blanks + 1)
    phase = blanks % 4
    od_like = (
        ((phase == 3) & ~_IS_END[lead])
        | ((phase == 2) & (lead == ord("\\")))
        | ((phase == 1) & _IS_OCTAL[lead])
    )
    hex_like = _IS_HEX[lead] & (_IS_HEX[after] | ((after | 32) == ord("x")))
    indented = indented[od_like | hex_like]
    if not len(rest):
        return sorted(int(s) for s in indented)
    # The first _LOOK bytes of each line in one gather, each class in one lookup.
    grid = column(rest[:, None], np.arange(_LOOK))
    cols, hexes, space = grid.T, _IS_HEX[grid].T, (grid == 32).T
    octal, ends, colon = _IS_OCTAL[grid].T, _IS_END[grid].T, (grid == ord(":")).T

    def cell(j: int) -> npt.NDArray[np.bool_]:
        three = space[j] & space[j + 1]
        printable = three & space[j + 2] & ~space[j + 3] & ~ends[j + 3]
        escaped = three & (cols[j + 2] == ord("\\"))
        octal_cell = space[j] & octal[j + 1] & octal[j + 2] & octal[j + 3]
        blank_cell = three & space[j + 2] & space[j + 3]
        result: npt.NDArray[np.bool_] = printable | escaped | octal_cell | blank_cell
        return result

    # An offset: 7 or 8 hex digits, then hex after ": ", " " or "  " (xxd, od, hexdump -C),
    # or (od -c) 7 octal digits and cells.
    offset7 = np.logical_and.reduce(hexes[:7])
    with_offset = offset7 & ((space[7] & hexes[8] & hexes[9]) | (hexes[7] & (colon[8] | space[8])))
    od_chars = np.logical_and.reduce(octal[:7]) & cell(7) & (cell(11) | ends[11])
    # Hex pairs with a separator at the line's start: "hh hh", "hh:hh:hh:hh", "hhhh hh".
    bare = (hexes[0] & hexes[1]) & (
        (space[2] & hexes[3] & hexes[4])
        | (colon[2] & hexes[3] & hexes[4] & colon[5] & colon[8])
        | (hexes[2] & hexes[3] & space[4] & hexes[5] & hexes[6])
    )
    c_array = (cols[0] == ord("0")) & ((cols[1] | 32) == ord("x")) & hexes[2]
    found = with_offset | od_chars | bare | c_array
    return sorted(int(s) for s in np.concatenate((rest[found], indented)))


@dataclass(slots=True)
class Segment:
    """Consecutive dump lines: their bytes, where each line starts in the output, its
    layout, and whether more output may continue the segment."""

    data: bytearray = field(default_factory=bytearray)
    # Per line: output offset, index of its first byte in `data`, layout, end of the line.
    line_starts: list[int] = field(default_factory=list)
    first_bytes: list[int] = field(default_factory=list)
    layouts: list[Layout] = field(default_factory=list)
    line_ends: list[int] = field(default_factory=list)
    open_end: bool = False

    def start_of(self, index: int) -> int:
        """Output offset where the text of byte `index` begins."""
        line = bisect_right(self.first_bytes, index) - 1
        return self.line_starts[line] + self.layouts[line].starts[index - self.first_bytes[line]]

    def end_of(self, index: int) -> int:
        """Output offset just past the text of byte `index`, or the end of its line when a
        text column repeats it."""
        line = bisect_right(self.first_bytes, index) - 1
        layout = self.layouts[line]
        if layout.text_column:
            return self.line_ends[line]
        return self.line_starts[line] + layout.ends[index - self.first_bytes[line]]


def dump_segments(
    data: bytes,
    newlines: npt.NDArray[np.int64],
    *,
    line_start: bool,
    final: bool,
    candidates: list[int] | None = None,
) -> list[Segment]:
    """The dump segments of `data`. Unless `final`, its last line is complete only when it
    ends in a line break, and a segment that reaches an unfinished line that may still
    become a dump line is open. `line_start`: data begins a line. `candidates`: the starts
    of every line of `data` (an unfinished last one too) that candidate_lines picks, when
    the caller has them."""
    bounds = newlines
    tail_start = int(newlines[-1]) + 1 if len(newlines) else 0
    if final and tail_start < len(data):
        bounds = np.append(newlines, len(data))
    partial = not final and tail_start < len(data)
    continues = not partial or may_become_dump_line(data[tail_start:])
    if candidates is None:
        candidates = candidate_lines(data, bounds)
    elif partial:
        # The unfinished last line is no line yet.
        candidates = [start for start in candidates if start < tail_start]
    segments: list[Segment] = []
    current: Segment | None = None
    next_start = -1
    for start in candidates:
        if start == 0 and not line_start:
            continue
        stop = data.find(b"\n", start)
        if stop < 0:
            stop = len(data)
        parsed = parse_dump_line(data[start:stop])
        if parsed is None:
            current = None
            continue
        if current is None or start != next_start:
            current = Segment()
            segments.append(current)
        line_end = stop - 1 if stop > start and data[stop - 1] == ord("\r") else stop
        current.line_starts.append(start)
        current.first_bytes.append(len(current.data))
        current.layouts.append(parsed[1])
        current.line_ends.append(line_end)
        current.data += parsed[0]
        next_start = stop + 1
        current.open_end = not final and next_start >= tail_start and continues
    return segments
