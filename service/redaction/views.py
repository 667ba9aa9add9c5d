"""The scrubber's text view of output: escapes decoded, line breaks removed, and a map
back to the output's offsets.

Printers escape and wrap values in more ways than can be listed as literal patterns (a
JSON encoder may write any character as `\\uXXXX`, base64 may be wrapped at any width, with
LF or CRLF). So the output is normalised instead, and the values' few plain forms are
searched in the result:

* escapes are decoded: JSON (`\\uXXXX` with surrogate pairs, `\\"` `\\\\` `\\/` `\\b` `\\f`
  `\\n` `\\r` `\\t`, and `\\'` `\\xHH` as JavaScript, Python and C write them), percent
  encoding (`%XX`), HTML and XML character references (`&#NN;`, `&#xHH;`, every HTML5
  named entity such as `&amp;` `&sol;`);
* then every `\\r` and `\\n` is removed.

A match that crosses a removed line break stands only if the break could have wrapped an
encoded text: the line before it is made of base64/hex/base32 characters alone, or ends in
at least JOIN_RUN of them (the first line of a blob printed after a label). Otherwise
ordinary lines ending in a word would be held back, waiting for a next line that might
continue a value. A value's own line breaks (a PEM key printed as it is) always stand.

A printer escapes in one kind, and leaves another kind's escape inside a value as it is
(`json.dumps` keeps a value's own `&amp;`): `Escapes.only` gives the view that decodes one
kind alone, which shows such a value as it was (match.py says when it is searched).

The map back to output offsets is built only when something was found: most output has
no escapes at all, and its text view is one `bytes.replace` away.
"""

from __future__ import annotations

import functools
import html.entities
import re
from bisect import bisect_right
from itertools import accumulate

import numpy as np
import numpy.typing as npt

from service.redaction import compiled

BREAK_BYTES = b"\r\n"
# A wrapped encoded text: lines of these characters (base64 in both alphabets, padding, hex,
# base32 in either case). A line ending in this many of them may be the first line of one.
JOIN_RUN = 16
# A match may leave a short line of encoded characters (a narrow blob's first line) for
# the next when it covers this many of them, or all: a line's last one or two characters
# begin some form by chance too often to hold every such line back for its next.
WRAP_TAIL = 3
ENCODED_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_")
_BLANK = frozenset(b" \t")
_LINE_ENDS = frozenset(BREAK_BYTES)
BREAK_VALUES = frozenset((b"\n", b"\r"))
# Offsets this close to the end of the text are mapped by walking back from the end.
_NEAR_END = 64

# One pattern per escape introducer: each starts with a literal byte that is searched for
# at memchr speed, and skipped entirely when the output holds none.
_PERCENT = rb"%[0-9A-Fa-f]{2}"
_BACKSLASH = (
    rb"\\(?:u[dD][89abAB][0-9A-Fa-f]{2}\\u[dD][c-fC-F][0-9A-Fa-f]{2}"
    rb"|u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|[\"'\\/bfnrt])"
)
_AMPERSAND = rb"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
# Each pattern begins with a literal byte that is found at memchr speed; the grouped one
# tokenises a read full of escapes in C (`split`).
_ESCAPES = tuple(
    (introducer, re.compile(pattern), re.compile(b"(" + pattern + b")"))
    for introducer, pattern in ((b"%", _PERCENT), (b"\\", _BACKSLASH), (b"&", _AMPERSAND))
)
# The start of an escape that more output may complete (searched only after the last
# complete escape). A lone high surrogate `\uD8xx` waits for its low half too.
_PARTIAL = re.compile(
    rb"(?:%[0-9A-Fa-f]?"
    rb"|\\(?:u[0-9A-Fa-f]{0,3}|x[0-9A-Fa-f]?)?"
    rb"|&(?:#[0-9]{0,7}|#[xX][0-9A-Fa-f]{0,6}|[A-Za-z][A-Za-z0-9]{0,31})?)\Z"
)
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9A-Fa-f]{2}\Z")
_LOW_SURROGATE_START = re.compile(rb"(?:\\(?:u(?:[dD](?:[c-fC-F][0-9A-Fa-f]{0,2})?)?)?)?\Z")
# Below this many introducers in a read, each is looked at on its own; from it on, the
# regex engine scans the whole read (faster per escape, slower per read).
_SPARSE = 2000
# Longest partial escape: `&` and a 31-character entity name.
_PARTIAL_MAX = 40
_SIMPLE = {
    ord('"'): b'"',
    ord("'"): b"'",
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}


def _code_point(number: int) -> bytes | None:
    if number > 0x10FFFF:
        return None
    return chr(number).encode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=4096)
def _decode_token(token: bytes) -> bytes | None:
    """The bytes an escape stands for, or None when it stands for nothing (left as is)."""
    first = token[0]
    if first == ord("%"):
        return bytes.fromhex(token[1:].decode())
    if first == ord("&"):
        body = token[1:-1].decode()
        if body.startswith(("#x", "#X")):
            return _code_point(int(body[2:], 16))
        if body.startswith("#"):
            return _code_point(int(body[1:]))
        named = html.entities.html5.get(body + ";")
        return named.encode("utf-8") if named is not None else None
    kind = token[1]
    if kind == ord("x"):
        return bytes.fromhex(token[2:].decode())
    if kind == ord("u"):
        high = int(token[2:6], 16)
        if len(token) == 12:
            low = int(token[8:12], 16)
            return _code_point(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        return _code_point(high)
    return _SIMPLE[kind]


class Escapes:
    """The escapes of output[:end], left to right: output[starts[k]:ends[k]] stands for
    decoded[k], and `text` is output[:end] with every escape decoded. `text_starts[k]` is
    where decoded[k] begins in `text`."""

    __slots__ = ("_text_starts", "decoded", "ends", "kinds", "source", "starts", "text")

    def __init__(self, data: bytes, end: int | None = None) -> None:
        stop = len(data) if end is None else end
        source = data if stop == len(data) else data[:stop]
        self.source = self.text = source
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.decoded: list[bytes] = []
        self._text_starts: list[int] | None = None
        # The introducers (b"%", b"\\", b"&") of the kinds of escapes found.
        self.kinds: frozenset[bytes] = frozenset()
        kinds = []
        for introducer, pattern, grouped in _ESCAPES:
            found = _find_escapes(source, introducer, pattern, grouped)
            if found[0]:
                kinds.append(found)
                self.kinds |= {introducer}
        if not kinds:
            return
        if len(kinds) == 1:
            self.starts, self.ends, self.decoded = kinds[0]
        else:
            # Escapes of different kinds never overlap: none holds another's introducer.
            merged = sorted(
                (start, end, value)
                for starts, ends, decoded in kinds
                for start, end, value in zip(starts, ends, decoded, strict=True)
            )
            self.starts = [start for start, _, _ in merged]
            self.ends = [end for _, end, _ in merged]
            self.decoded = [value for _, _, value in merged]
        self.text = _decoded_text(source, self.starts, self.ends, self.decoded)

    @property
    def count(self) -> int:
        return len(self.starts)

    def __len__(self) -> int:
        return len(self.starts)

    @classmethod
    def none(cls, data: bytes, end: int) -> Escapes:
        """data[:end] taken as it is: no escape decoded."""
        return cls(b"", 0)._as(data[:end] if end < len(data) else data)

    def _as(self, source: bytes) -> Escapes:
        self.source = self.text = source
        return self

    def __repr__(self) -> str:
        return f"Escapes({len(self.starts)})"

    @property
    def text_starts(self) -> list[int]:
        """Where each escape's decoded bytes begin in `text`."""
        if self._text_starts is None:
            starts = np.array(self.starts, dtype=np.int64)
            lengths = np.fromiter(map(len, self.decoded), dtype=np.int64, count=len(starts))
            shrink = np.array(self.ends, dtype=np.int64) - starts - lengths
            gone = np.concatenate(([0], np.cumsum(shrink)[:-1]))
            self._text_starts = (starts - gone).tolist()
        return self._text_starts

    def last(self) -> tuple[int, int] | None:
        """The output span of the last escape."""
        return (self.starts[-1], self.ends[-1]) if self.starts else None

    def cut(self, end: int) -> Escapes:
        """The escapes of output[:end], `end` at or after the start of the last escape
        kept (an escape that more output may complete is dropped, not decoded)."""
        keep = bisect_right(self.ends, end)
        shrink = sum(
            stop - start - len(value)
            for start, stop, value in zip(
                self.starts[:keep], self.ends[:keep], self.decoded[:keep], strict=True
            )
        )
        cut = Escapes(b"", 0)
        cut.source = self.source[:end]
        cut.starts, cut.ends, cut.decoded = (
            self.starts[:keep],
            self.ends[:keep],
            self.decoded[:keep],
        )
        cut.text = self.text[: end - shrink] if keep else cut.source
        # At most these: a kind whose only escape was cut off leaves `only` nothing to do.
        cut.kinds = self.kinds
        return cut

    def only(self, introducer: bytes) -> Escapes:
        """The escapes of one kind (those that begin with `introducer`), the others taken
        as they are: the view of a printer that escapes in that one kind. Such a printer
        leaves another kind's escape inside a value as it is (JSON writes `&amp;` as it
        is, `html.escape` a `%41`), so decoding every kind at once would change the value."""
        mark = introducer[0]
        source = self.source
        keep = [k for k, start in enumerate(self.starts) if source[start] == mark]
        one = Escapes(b"", 0)
        one.source = source
        one.starts = [self.starts[k] for k in keep]
        one.ends = [self.ends[k] for k in keep]
        one.decoded = [self.decoded[k] for k in keep]
        one.kinds = frozenset({introducer}) if keep else frozenset()
        one.text = _decoded_text(source, one.starts, one.ends, one.decoded)
        return one


def _decoded_text(source: bytes, starts: list[int], ends: list[int], decoded: list[bytes]) -> bytes:
    """`source` with source[starts[k]:ends[k]] replaced by decoded[k] (sorted, apart)."""
    if not starts:
        return source
    # Views, not slices: the text between escapes is copied once, by the join.
    whole = memoryview(source)
    literals = [
        whole[begin:start] for begin, start in zip([0, *ends], [*starts, len(source)], strict=True)
    ]
    pieces: list[bytes | memoryview] = [b""] * (2 * len(literals) - 1)
    pieces[0::2] = literals
    pieces[1::2] = decoded
    return b"".join(pieces)


def _find_escapes(
    source: bytes, introducer: bytes, pattern: re.Pattern[bytes], grouped: re.Pattern[bytes]
) -> tuple[list[int], list[int], list[bytes]]:
    """One kind's escapes in `source`: starts, ends and decoded bytes. A few are found by
    jumping from one introducer to the next (memchr) and trying the pattern there; past
    _SPARSE of them (JSON logs, HTML), the rest is tokenised by the regex engine."""
    starts: list[int] = []
    ends: list[int] = []
    decoded: list[bytes] = []
    pos = source.find(introducer)
    looked = 0
    while pos >= 0 and looked < _SPARSE:
        looked += 1
        hit = pattern.match(source, pos)
        if hit is None:
            pos = source.find(introducer, pos + 1)
            continue
        token = hit.group()
        value = _decode_token(token)
        end = pos + len(token)
        if value is not None:
            starts.append(pos)
            ends.append(end)
            decoded.append(value)
        pos = source.find(introducer, end)
    if pos < 0:
        return starts, ends, decoded
    parts = grouped.split(source[pos:])
    offsets = list(accumulate(map(len, parts), initial=pos))
    tokens = parts[1::2]
    values = [_decode_token(token) for token in tokens]
    for k, value in enumerate(values):
        if value is not None:
            starts.append(offsets[2 * k + 1])
            ends.append(offsets[2 * k + 2])
            decoded.append(value)
    return starts, ends, decoded


def partial_escape_start(data: bytes, escapes: Escapes) -> int | None:
    """Where an escape that more output could complete begins at the end of `data`."""
    size = len(data)
    last_end = 0
    last = escapes.last()
    if last is not None:
        start, last_end = last
        if _HIGH_SURROGATE.match(data, start, last_end) and _LOW_SURROGATE_START.match(
            data, last_end
        ):
            return start
    match = _PARTIAL.search(data, max(last_end, size - _PARTIAL_MAX))
    return match.start() if match else None


def remove_breaks(data: bytes) -> bytes:
    """`data` without `\\r` and `\\n` (by the compiled line pass where it is built)."""
    fast = compiled.fastscan
    if fast is not None and type(data) is bytes:
        return fast.remove_breaks(data)
    return remove_breaks_pure(data)


def remove_breaks_pure(data: bytes) -> bytes:
    """`remove_breaks` in bytes methods: the reference and the fallback."""
    if b"\r" in data:
        data = data.replace(b"\r", b"")
    return data.replace(b"\n", b"")


def decode_escapes(data: bytes) -> bytes:
    """`data` with every escape decoded (see the module docstring)."""
    return Escapes(data).text


class TextView:
    """The text view of output[:end]: escapes decoded (`decoded`), then line breaks removed
    (`text`). Offsets map back to the output; an escape maps to the whole escape."""

    __slots__ = (
        "_breaks",
        "_escapes",
        "_removed",
        "decoded",
        "line_start",
        "text",
    )

    def __init__(
        self,
        escapes: Escapes,
        *,
        line_start: bool,
        breaks: npt.NDArray[np.int64] | None = None,
        text: bytes | None = None,
    ) -> None:
        """`escapes`: those of the output viewed (with its decoded text); `line_start`
        tells whether the output begins a line (otherwise the line's beginning was cut
        off, and counts as not encoded text); `breaks`, the offsets of `\\r` and `\\n` in
        the output when the caller has them; `text`, the decoded text without line breaks
        when the caller has it."""
        self._escapes = escapes
        self.decoded = escapes.text
        self.text = remove_breaks(self.decoded) if text is None else text
        self.line_start = line_start
        self._breaks = breaks
        self._removed: npt.NDArray[np.int64] | None = None

    def __repr__(self) -> str:
        return f"TextView(len={len(self.text)}, escapes={len(self._escapes)})"

    def _removed_at(self) -> npt.NDArray[np.int64]:
        """Where the text had reached when each line break was removed (breaks[k] - k)."""
        if self._removed is None:
            self._removed = self._break_offsets() - np.arange(len(self.decoded) - len(self.text))
        return self._removed

    def _break_offsets(self) -> npt.NDArray[np.int64]:
        """Offsets of the line breaks in the decoded text: the output's own, moved by the
        escapes before them, and those that escapes decode to (`\\n`, `%0A`)."""
        source = self._escapes.source
        raw = self._breaks
        if raw is None:
            array = np.frombuffer(source, dtype=np.uint8)
            raw = np.flatnonzero((array == 10) | (array == 13))
        elif len(raw) and raw[-1] >= len(source):
            raw = raw[raw < len(source)]
        escapes = self._escapes
        if not escapes.count:
            return raw
        ends = np.array(escapes.ends, dtype=np.int64)
        shrink = np.concatenate(
            ([0], np.cumsum(ends - np.array(escapes.starts) - [len(d) for d in escapes.decoded]))
        )
        moved = raw - shrink[np.searchsorted(ends, raw, side="right")]
        # An escape that stands for a line break stands for it alone (`\\n`, `%0A`,
        # `&#10;`): UTF-8 of any other code point holds no byte below 0x80.
        text_starts = escapes.text_starts
        made = [text_starts[k] for k, value in enumerate(escapes.decoded) if value in BREAK_VALUES]
        if made:
            moved = np.sort(np.concatenate((moved, made)), kind="stable")
        return moved

    def _to_decoded(self, pos: int) -> int:
        gone = len(self.decoded) - len(self.text)
        if len(self.text) - pos <= _NEAR_END:
            # Near the end (a held suffix): count the breaks after it, not all before it.
            decoded = self.decoded
            after = len(self.text) - pos
            at = len(decoded)
            while after:
                at -= 1
                if decoded[at] not in _LINE_ENDS:
                    after -= 1
            return at
        return pos + int(np.searchsorted(self._removed_at(), pos, side="right")) if gone else pos

    def to_decoded(self, start: int, end: int) -> tuple[int, int]:
        """The decoded-view span of text[start:end] (end > start)."""
        if len(self.text) == len(self.decoded):
            return start, end
        return self._to_decoded(start), self._to_decoded(end - 1) + 1

    def to_decoded_many(self, starts: list[int], ends: list[int]) -> tuple[list[int], list[int]]:
        """`to_decoded` for many spans at once (one vectorised lookup)."""
        if len(self.text) == len(self.decoded) or not starts:
            return starts, ends
        removed_at = self._removed_at()
        first = np.asarray(starts, dtype=np.int64)
        last = np.asarray(ends, dtype=np.int64) - 1
        first = first + np.searchsorted(removed_at, first, side="right")
        last = last + np.searchsorted(removed_at, last, side="right") + 1
        return first.tolist(), last.tolist()

    def to_output(self, start: int, end: int) -> tuple[int, int]:
        """The output span of decoded[start:end] (end > start), widened to whole escapes."""
        if not self._escapes.count:
            return start, end
        return self._output_offset(start, True), self._output_offset(end - 1, False) + 1

    def _output_offset(self, pos: int, first: bool) -> int:
        escapes = self._escapes
        text_starts = escapes.text_starts
        index = bisect_right(text_starts, pos) - 1
        if index < 0:
            return pos
        end = escapes.ends[index]
        decoded_end = text_starts[index] + len(escapes.decoded[index])
        if pos < decoded_end:
            return escapes.starts[index] if first else end - 1
        return end + (pos - decoded_end)

    def first_break(self, start: int, end: int) -> int | None:
        """The first removed line break in decoded[start:end], if any."""
        if len(self.text) == len(self.decoded):
            return None
        found = [at for at in (self.decoded.find(b"\n", start, end),
                               self.decoded.find(b"\r", start, end)) if at >= 0]  # fmt: skip
        return min(found) if found else None

    def _encoded_line(self, at: int) -> tuple[int, int, bool]:
        """The line that the break at decoded[at] ends: where its run of encoded characters
        begins, how long the run is (up to JOIN_RUN), and whether it is the whole line
        (blanks around it aside)."""
        data = self.decoded
        end = at
        while end > 0 and data[end - 1] in _BLANK:
            end -= 1
        run = 0
        while run < JOIN_RUN and end - run > 0 and data[end - run - 1] in ENCODED_CHARS:
            run += 1
        begin = end - run
        if run == 0 or run >= JOIN_RUN:
            return begin, run, False
        edge = begin
        while edge > 0 and data[edge - 1] in _BLANK:
            edge -= 1
        whole = self.line_start if edge == 0 else data[edge - 1] in _LINE_ENDS
        return begin, run, whole

    def joinable(self, at: int, start: int) -> bool:
        """Whether a match that begins at decoded[start] may go on across the line break at
        decoded[at], the first one after `start` (see the module docstring)."""
        begin, run, whole = self._encoded_line(at)
        if run >= JOIN_RUN:
            return True
        if not whole:
            return False
        if start <= begin or begin + run - start >= WRAP_TAIL:
            # The match covers the whole line, or enough of it not to be a coincidence:
            # a blob's first line, wrapped narrower than JOIN_RUN.
            return True
        # A line inside a blob wrapped narrower than JOIN_RUN: the line before it is made
        # of as many encoded characters (found before its own break, `\r\n` or `\n`).
        edge = begin
        while edge > 0 and self.decoded[edge - 1] in _BLANK:
            edge -= 1
        if edge == 0:
            return False
        before = edge - 1
        if self.decoded[before] == ord("\n") and before and self.decoded[before - 1] == ord("\r"):
            before -= 1
        _, previous, previous_whole = self._encoded_line(before)
        return previous_whole and previous == run
