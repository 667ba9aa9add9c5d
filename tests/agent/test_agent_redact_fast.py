"""The scrubber's fast paths give the output of its plain paths: the as-is view searched
only near escapes (nearby.py) finds what searching all of it finds, on inputs built so
that escapes sit next to values, inside them, in the lines around wrapped blobs, and far
from them (the regions must then be a small part of the read, or the plain path runs).
Output that is ready at once is read in larger windows, and a read never waits for more."""

from __future__ import annotations

import base64
import os
import select

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.redaction import match
from service.redaction.engines import available_engines
from service.redaction.match import Search
from service.redaction.nearby import as_is_regions
from service.redaction.scrubber import Scrubber, ScrubStream, read_ready
from tests.agent.redact_reference import reference_scrub

PLAIN = b"".join(b"line %04d of ordinary output, nothing to see\n" % n for n in range(400))
WORDS = [b"GET", b"status=200", b"retrying", b"upstream", b"cache", b"warning:", b"a1b2"]
# Escapes of every kind, and introducers that begin none.
ESCAPES = [b"%41", b"%0A", b"\\u0041", b"\\n", b'\\"', b"&amp;", b"&#65;", b"&#x41;", b"%", b"&"]
_ENCODED = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/", max_size=64).map(str.encode)
# What turns a value's last `%`, `\\` or `&` into an escape.
COMPLETIONS = [b"", b"41", b"0A", b"u0041", b"n", b'"', b"amp;", b"#65;"]
# Values with an escape introducer far inside (a match covering an escape may begin that
# far before it), short ones, and ones made of encoded characters (wrapped blobs).
VALUES = st.one_of(
    st.binary(min_size=4, max_size=16),
    st.builds(
        lambda head, mark, tail: head + mark + tail,
        st.one_of(st.binary(min_size=30, max_size=60), _ENCODED.filter(lambda t: len(t) >= 30)),
        st.sampled_from([b"%", b"\\", b"&", b"%41", b"\\x41", b"&amp;"]),
        st.binary(max_size=8),
    ),
    _ENCODED.filter(lambda t: len(t) >= 8),
    st.builds(
        lambda head, mark: head + mark,
        _ENCODED.filter(lambda t: len(t) >= 33),
        st.sampled_from([b"%", b"\\", b"&"]),
    ),
)


@st.composite
def filler(draw: st.DrawFn) -> bytes:
    """Ordinary lines, a few with escapes in them."""
    lines = []
    for _ in range(draw(st.integers(min_value=10, max_value=40))):
        words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=10))
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            words.insert(draw(st.integers(0, len(words))), draw(st.sampled_from(ESCAPES)))
        lines.append(b" ".join(words))
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    return newline.join(lines) + newline


@st.composite
def printed_near_escapes(draw: st.DrawFn, value: bytes) -> bytes:
    """`value` printed with an escape just before, inside or after it, or as a wrapped blob
    with an escape in a neighbouring line."""
    escape = draw(st.sampled_from(ESCAPES))
    kind = draw(st.integers(min_value=0, max_value=6))
    if kind == 0:
        return escape + value
    if kind == 1:
        at = draw(st.integers(min_value=0, max_value=len(value)))
        return value[:at] + escape + value[at:]
    if kind == 2:
        return value + escape
    if kind == 6:
        # Wrapped as it is, and followed by what completes an escape the value ends in:
        # the as-is view alone sees the value, from lines before the escape.
        width = draw(st.integers(min_value=16, max_value=48))
        lines = b"\n".join(value[i : i + width] for i in range(0, len(value), width))
        return lines + draw(st.sampled_from(COMPLETIONS)) + b"\n"
    if kind == 3:
        cut = draw(st.integers(min_value=1, max_value=len(value)))
        return b"".join(b"%%%02X" % byte for byte in value[:cut]) + value[cut:]
    encoded = base64.b64encode(draw(st.binary(max_size=2)) + value)
    width = draw(st.integers(min_value=2, max_value=40))
    lines = [encoded[i : i + width] for i in range(0, len(encoded), width)]
    line = draw(st.integers(min_value=0, max_value=len(lines)))
    lines.insert(line, b"x " + escape)
    return b"\n".join(lines) + b"\n"


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes, list[int]]:
    values = draw(st.lists(VALUES, min_size=1, max_size=3))
    secrets = [(f"<p{i}>".encode(), value) for i, value in enumerate(values)]
    # Plain lines first and last: the regions near the escapes stay a small part of the
    # text, and away from its end.
    parts = [PLAIN, draw(filler()), b"note %41 &amp; \\n here\n"]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        parts.append(draw(printed_near_escapes(draw(st.sampled_from(values)))))
        parts.append(draw(filler()))
    parts.append(PLAIN)
    cuts = draw(st.lists(st.integers(min_value=0, max_value=50_000), max_size=4))
    return secrets, b"".join(parts), cuts


def _scrub(scrubber: Scrubber, pieces: list[bytes], *, nearby: bool) -> bytes:
    stream = ScrubStream(scrubber, Search(scrubber.finder(), nearby=nearby))
    return b"".join(stream.feed(piece) for piece in pieces) + stream.finish()


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=streams())
def test_searching_near_escapes_gives_the_output_of_searching_everything(
    case: tuple[list[tuple[bytes, bytes]], bytes, list[int]],
) -> None:
    secrets, text, cuts = case
    expected = reference_scrub(secrets, text)
    used = []
    real = match._as_is_keys

    def spy(*args: object, **kwargs: object) -> list[int] | None:
        keys = real(*args, **kwargs)  # type: ignore[arg-type]
        used.append(keys is not None)
        return keys

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(match, "_as_is_keys", spy)
        for engine in available_engines():
            scrubber = Scrubber(secrets, engine=engine)
            whole = _scrub(scrubber, [text], nearby=True)
            assert whole == expected, engine
            assert _scrub(scrubber, _pieces(text, cuts), nearby=True) == expected, engine
            assert _scrub(scrubber, _pieces(text, cuts), nearby=False) == expected, engine
    # The whole text has escapes in a small part of it: the fast path ran.
    assert used[0]


@pytest.mark.parametrize(("mark", "completion"), [(b"%", b"41"), (b"\\", b"n"), (b"&", b"amp;")])
def test_a_value_the_output_after_it_turns_into_an_escape_is_found_lines_before(
    mark: bytes, completion: bytes
) -> None:
    # Only the as-is view shows the value (decoded, its last byte joins an escape), and
    # the value begins 48 text bytes before the escape's line: further than an anchor.
    value = b"Q" * 60 + mark
    wrapped = b"\n".join(value[i : i + 16] for i in range(0, len(value), 16))
    text = PLAIN + b"blob:\n" + wrapped + completion + b"\n" + PLAIN
    secrets = [(b"<v>", value)]
    expected = reference_scrub(secrets, text)
    assert b"<v>" in expected
    for engine in available_engines():
        scrubber = Scrubber(secrets, engine=engine)
        assert _scrub(scrubber, [text], nearby=True) == expected, engine
        assert _scrub(scrubber, _pieces(text, [len(PLAIN) + 30]), nearby=True) == expected


def test_a_read_ending_in_a_value_an_escape_swallows_holds_it_back() -> None:
    # "%41…" decodes to "A…": only the as-is view sees the value's beginning at the end of
    # the read, and must hold it back for the rest.
    value = b"41" + b"qrstuvwxyz" * 4
    text = PLAIN + b"x%" + value + b"\n" + PLAIN
    secrets = [(b"<v>", value)]
    expected = reference_scrub(secrets, text)
    assert b"x%<v>" in expected
    cut = len(PLAIN) + 2 + 12
    for engine in available_engines():
        scrubber = Scrubber(secrets, engine=engine)
        assert _scrub(scrubber, [text[:cut], text[cut:]], nearby=True) == expected, engine


def test_a_read_full_of_escapes_is_searched_whole() -> None:
    # Regions would cover most of the read: one search of all of it is cheaper.
    scrubber = Scrubber({b"<v>": b"value-with-%-far-inside-it-1234567890"})
    text = b'{"msg": "a \\"quoted\\" word"}\n' * 200
    calls = []
    real = match._as_is_keys

    def spy(*args: object, **kwargs: object) -> list[int] | None:
        keys = real(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(keys)
        return keys

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(match, "_as_is_keys", spy)
        assert scrubber.scrub(text) == text
    assert calls == [None]


def test_regions_cover_the_escape_line_the_reach_before_and_the_lines_after() -> None:
    lines = [b"line %02d words words" % n for n in range(10)]
    lines[4] = b"has %41 an escape"
    window = b"\n".join(lines) + b"\n"
    start = window.index(b"%41")
    line_start = window.rindex(b"\n", 0, start) + 1
    [(first, last)] = as_is_regions(window, [start], [start + 3], reach=10, anchor=5)
    # 10 text bytes before the line (the line break before it is no text byte).
    assert first == line_start - 11
    # The escape's line, the two after it, and 5 text bytes of the next one.
    after = window.index(lines[6]) + len(lines[6]) + 1
    assert last == after + 5


def test_output_ready_at_once_is_read_in_one_window_and_a_read_never_waits() -> None:
    read_end, write_end = os.pipe()
    poller = select.poll()
    poller.register(read_end, select.POLLIN)
    try:
        os.write(write_end, b"a" * 1000 + b"b" * 1000 + b"c" * 1000 + b"d" * 700)
        # Chunks while the pipe has more, up to the limit.
        assert read_ready(read_end, 1000, poller, limit=2500) == [
            b"a" * 1000,
            b"b" * 1000,
            b"c" * 1000,
        ]
        # A short read ends the window at once (the writer is still open: no waiting).
        assert read_ready(read_end, 1000, poller, limit=2500) == [b"d" * 700]
        os.write(write_end, b"e" * 1000)
        # A full chunk and nothing more ready: no waiting for more either.
        assert read_ready(read_end, 1000, poller, limit=2500) == [b"e" * 1000]
        os.write(write_end, b"f" * 1500)
        os.close(write_end)
        write_end = -1
        assert read_ready(read_end, 1000, poller, limit=2500) == [b"f" * 1000, b"f" * 500]
        assert read_ready(read_end, 1000, poller, limit=2500) == []
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_parts_read_at_once_scrub_as_their_joined_bytes() -> None:
    # scrub_fd hands the parts of one window over unjoined: a value split between them, or
    # between them and what the stream held back, is still replaced.
    value = b"tok_9fQw2LmZx81RkPq0aVbN7cYd"
    scrubber = Scrubber([(b"<tok>", value)])
    text = b"line one\nkey=" + value + b" and " + value[:-3]
    for first in range(len(text)):
        for second in range(first, len(text), 7):
            stream = scrubber.stream()
            out = stream.feed_pieces(text[:first], text[first:second], text[second:])
            out += stream.feed_pieces(value[-3:] + b"\n")
            out += stream.finish_pieces()
            assert b"".join(out) == b"line one\nkey=<tok> and <tok>\n", (first, second)
