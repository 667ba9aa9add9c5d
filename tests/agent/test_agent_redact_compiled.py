"""The compiled line pass (service/redaction/_fastscan.c) gives exactly what the pure path
gives: the same line breaks, text without them and dump-line candidates on any read, and so
the same scrubbed output, on every form the benchmark plants, with LF and CRLF, with reads
split at every offset of a printed value and escapes cut at the read's edges. Where the
module is absent the scrubber says so in one debug line and runs the pure path."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.redact.plants import PRINTERS
from service.redaction import compiled
from service.redaction.compiled import LinePass
from service.redaction.dumps import candidate_lines, dump_segments
from service.redaction.lines import Lines, scan_lines
from service.redaction.scrubber import Scrubber
from service.redaction.views import Escapes, partial_escape_start, remove_breaks_pure

VALUES = [
    b"tok_9fQw2LmZx81RkPq0aVbN7cYd",
    b"hunter2!",
    b'p@ss%word&amp;\\n"quoted"/x',
    b"-----BEGIN KEY-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n-----END KEY-----",
    bytes(range(1, 40)),
]
FILLER = b"GET /status 200 cafe deadbeef ok\n00 ff: not a dump\n  ab cd ef\nplain words here\n"
# Bytes the line pass and the dump-line detector look at, weighted towards them.
_INTERESTING = b"\r\n \t0123456789abcdefABCDEFxX:\\%&#;|.ghz"


def _fast() -> LinePass:
    fast = compiled.fastscan
    assert fast is not None, "the compiled line pass is not built (make dev needs gcc)"
    return fast


def _pure_lines(window: bytes) -> tuple[list[int], list[int], bytes, list[int]]:
    """What the pure path computes: breaks, line feeds, text, candidates of every line."""
    array = np.frombuffer(window, dtype=np.uint8)
    breaks = np.flatnonzero((array == 10) | (array == 13))
    newlines = np.flatnonzero(array == 10)
    tail = int(newlines[-1]) + 1 if len(newlines) else 0
    bounds = np.append(newlines, len(window)) if tail < len(window) else newlines
    return (
        breaks.tolist(),
        newlines.tolist(),
        remove_breaks_pure(window),
        candidate_lines(window, bounds),
    )


def _assert_same_lines(window: bytes) -> None:
    packed_breaks, packed_newlines, text, packed_candidates = _fast().scan_lines(window)
    compiled_lines = (
        np.frombuffer(packed_breaks, dtype=np.int64).tolist(),
        np.frombuffer(packed_newlines, dtype=np.int64).tolist(),
        text,
        np.frombuffer(packed_candidates, dtype=np.int64).tolist(),
    )
    assert compiled_lines == _pure_lines(window)
    assert _fast().remove_breaks(window) == remove_breaks_pure(window)


def _printed(newline: bytes) -> Iterator[tuple[str, int, bytes]]:
    """Every form of every value (by index) as the benchmark prints it, in ordinary lines."""
    for name, printer in PRINTERS.items():
        for index, value in enumerate(VALUES):
            body = printer(value).replace(b"\n", newline)
            yield name, index, FILLER.replace(b"\n", newline) + body + newline + FILLER


@pytest.fixture
def pure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "fastscan", None)


def _scrub_split(scrubber: Scrubber, data: bytes, cuts: list[int]) -> list[bytes]:
    """The pieces the stream passes on when `data` arrives in reads cut at `cuts`."""
    stream = scrubber.stream()
    out = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        out.append(stream.feed(data[start:end]))
    out.append(stream.finish())
    return out


def _both_paths(
    monkeypatch: pytest.MonkeyPatch, scrubber: Scrubber, data: bytes, cuts: list[int]
) -> tuple[list[bytes], list[bytes]]:
    fast = _scrub_split(scrubber, data, cuts)
    with monkeypatch.context() as patch:
        patch.setattr(compiled, "fastscan", None)
        pure = _scrub_split(scrubber, data, cuts)
    return fast, pure


def test_the_compiled_line_pass_is_built_by_make_dev() -> None:
    # The comparisons below are only worth something where the module exists.
    assert compiled.load() is not None
    assert isinstance(scan_lines(b"a\r\nb").candidates, list)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_line_pass_equals_the_pure_path_on_every_planted_form(newline: bytes) -> None:
    for _name, _index, text in _printed(newline):
        _assert_same_lines(text)
        # Every prefix near the printed value: cut lines, cut CRLF, a cut indent.
        start = text.index(newline + FILLER[:3], 1)
        for end in range(len(FILLER) - 8, min(len(text), start + 80)):
            _assert_same_lines(text[:end])


@given(st.binary(max_size=300) | st.lists(st.sampled_from(list(_INTERESTING))).map(bytes))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_line_pass_equals_the_pure_path_on_any_bytes(window: bytes) -> None:
    _assert_same_lines(window)


def test_line_pass_equals_the_pure_path_on_long_runs_and_edges() -> None:
    # Blank runs past the detector's 64-byte indent limit, od -c cells, breaks on each side
    # of a 16-byte block, lines ending at the very end of the read.
    cases = [
        b"",
        b"\n",
        b"\r",
        b"\r\n" * 40,
        b" " * 70 + b"ab cd\n",
        b"\t" * 63 + b"0x41\n" + b" " * 64 + b"  \\n\n",
        b"0000000   a   b  \\n 001\n0000020\n",
        b"0000000   a",
        b"00000000: 6869",
        b"x" * 15 + b"\n" + b"y" * 16 + b"\r\n" + b"z" * 17,
        bytes(range(256)) * 3,
    ]
    for case in cases:
        _assert_same_lines(case)
        for end in range(len(case)):
            _assert_same_lines(case[:end])


# Escapes of every kind, those that decode to a line break, and their introducers alone.
_ESCAPED = [b"%41", b"%0A", b"%0d", b"\\n", b"\\r", b"\\u0041", b"&amp;", b"&#10;", b"&NewLine;"]


@given(
    st.lists(
        st.sampled_from([*_ESCAPED, b"\r\n", b"\n", b"\r", b"%", b"&", b"\\", b"ab"])
        | st.binary(max_size=6)
    ).map(b"".join)
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_text_of_escapes_equals_their_decoded_text_without_breaks(window: bytes) -> None:
    # The text view is built from the line pass's text between escapes: it must be the
    # decoded text without line breaks, also for escapes cut off at the read's end.
    escapes = Escapes(window)
    partial = partial_escape_start(window, escapes)
    views = [escapes, *([escapes.cut(partial)] if partial is not None else [])]
    views += [escapes.only(kind) for kind in (b"%", b"\\", b"&")]
    for view in views:
        expected = remove_breaks_pure(view.text)
        assert scan_lines(window).text_of(view) == expected
        assert Lines(window, *_pure_breaks(window)).text_of(view) == expected


def _pure_breaks(window: bytes) -> tuple[np.ndarray, np.ndarray]:
    array = np.frombuffer(window, dtype=np.uint8)
    return np.flatnonzero((array == 10) | (array == 13)), np.flatnonzero(array == 10)


@pytest.mark.parametrize("final", [True, False])
def test_dump_segments_from_compiled_candidates_equal_its_own(final: bool) -> None:
    for _name, _index, text in [*_printed(b"\n"), *_printed(b"\r\n")]:
        for end in (len(text), len(text) - 5, len(text) // 2):
            window = text[:end]
            lines = scan_lines(window)
            given_candidates = dump_segments(
                window,
                lines.newlines,
                line_start=True,
                final=final,
                candidates=lines.candidates,
            )
            assert given_candidates == dump_segments(
                window, lines.newlines, line_start=True, final=final
            )


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_scrubbing_is_the_same_with_reads_split_at_every_offset_of_a_value(
    monkeypatch: pytest.MonkeyPatch, newline: bytes
) -> None:
    scrubber = Scrubber([(b"<s%d>" % i, v) for i, v in enumerate(VALUES)])
    for name, index, text in _printed(newline):
        start = len(FILLER.replace(b"\n", newline))
        stop = len(text) - start
        whole_fast, whole_pure = _both_paths(monkeypatch, scrubber, text, [])
        assert whole_fast == whole_pure, name
        # Every printed value is found (the same output could be a miss on both paths).
        assert b"<s" in b"".join(whole_fast), (name, index)
        for cut in range(start - 2, stop + 2):
            fast, pure = _both_paths(monkeypatch, scrubber, text, [cut])
            assert fast == pure, (name, cut)


@pytest.mark.parametrize(
    "escape", [b"%41", b"%0A", b"\\u0041", b"\\ud83d\\ude00", b"\\n", b"&amp;", b"&#x41;"]
)
def test_scrubbing_is_the_same_with_an_escape_cut_at_the_read_edge(
    monkeypatch: pytest.MonkeyPatch, escape: bytes
) -> None:
    scrubber = Scrubber([(b"<s%d>" % i, v) for i, v in enumerate(VALUES)])
    for value in VALUES[:3]:
        text = FILLER + b"key=" + escape + value + escape + b"\r\n" + FILLER
        at = len(FILLER) + 4
        # Cut inside the escape before the value, and (two reads) inside the one after it.
        for cut in range(at, at + len(escape) + 1):
            after = cut + len(escape) + len(value)
            fast, pure = _both_paths(monkeypatch, scrubber, text, [cut, after])
            assert fast == pure, (escape, cut)


@pytest.mark.usefixtures("pure")
def test_without_the_module_the_pure_path_scrubs() -> None:
    assert compiled.fastscan is None
    lines = scan_lines(b"a\r\nb\n")
    assert isinstance(lines, Lines)
    assert lines.candidates is None
    assert lines.text_before(5) == b"ab"
    scrubber = Scrubber([(b"<tok>", VALUES[0])])
    assert scrubber.scrub(b"x " + VALUES[0] + b"\r\n") == b"x <tok>\r\n"


def test_an_absent_module_is_said_in_one_debug_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # None in sys.modules makes the import fail, as on a machine that did not build it.
    monkeypatch.setitem(sys.modules, "service.redaction._fastscan", None)
    with caplog.at_level(logging.DEBUG, logger="service.redaction.compiled"):
        assert compiled.load() is None
    assert [record.getMessage() for record in caplog.records] == [
        "secret scrubber: compiled line pass not built, using the pure-Python path"
    ]


def test_the_compiled_pass_refuses_what_is_not_bytes_without_showing_it() -> None:
    fast = _fast()
    secret = "tripwire-2f9c41d"
    for call in (fast.scan_lines, fast.remove_breaks):
        with pytest.raises(TypeError, match="takes bytes") as raised:
            call(secret)  # type: ignore[arg-type]
        assert secret not in str(raised.value)
        with pytest.raises(TypeError):
            call(bytearray(b"a\nb"))  # type: ignore[arg-type]
