"""The scrubber's views of output, piece by piece: escapes decoded, line breaks that may wrap
an encoded text, dumps read back into bytes, and two streams scrubbed together."""

from __future__ import annotations

import os
import subprocess
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.redaction.dumps import (
    dump_segments,
    may_become_dump_line,
    parse_dump_line,
)
from service.redaction.forms import secret_forms, value_variants
from service.redaction.pump import pump
from service.redaction.scrubber import Scrubber, write_all
from service.redaction.views import Escapes, TextView, decode_escapes, partial_escape_start
from tests.agent.conftest import DUMPS

SAMPLE = bytes(range(256)) + b"tw-7d1e0c5b9a3f-DO-NOT-LEAK\n"


@pytest.mark.parametrize(
    ("escaped", "decoded"),
    [
        (b"a\\u0026b\\u003Cc\\u003e", b"a&b<c>"),  # Go
        (b"http:\\/\\/x", b"http://x"),  # PHP
        (b'\\"q\\" \\\\ \\b\\f\\n\\r\\t', b'"q" \\ \b\f\n\r\t'),
        (b"\\ud83d\\ude00 \\u00e9", "\U0001f600 é".encode()),
        (b"%41%2f%2F+", b"A//+"),
        (b"&amp;&lt;&gt;&quot;&apos;&#39;&#x2F;&sol;&NewLine;", b"&<>\"''//\n"),
        (b"\\x74\\x77 \\'", b"tw '"),
        # Not escapes: left as they are.
        (
            b"100% \\q &nosuchentity; &#99999999; \\u12",
            b"100% \\q &nosuchentity; &#99999999; \\u12",
        ),
        # A backslash escaped before a `u`: `\\u0041` is a backslash and "u0041".
        (b"\\\\u0041", b"\\u0041"),
    ],
)
def test_escapes_are_decoded(escaped: bytes, decoded: bytes) -> None:
    assert decode_escapes(escaped) == decoded


@pytest.mark.parametrize(
    ("text", "partial"),
    [
        (b"done 100%", 8),
        (b"x %4", 2),
        (b"x \\", 2),
        (b"x \\u00", 2),
        (b"AT&T", 2),
        (b"x &#x2", 2),
        (b"x \\ud83d", 2),
        (b"x \\ud83d\\u", 2),
        (b"x %41", None),
        (b"x \\\\", None),
        (b"plain text", None),
    ],
)
def test_an_escape_cut_off_by_the_end_is_found(text: bytes, partial: int | None) -> None:
    assert partial_escape_start(text, Escapes(text)) == partial


def _view(text: bytes) -> TextView:
    return TextView(Escapes(text), line_start=True)


@pytest.mark.parametrize(
    ("text", "start", "joinable"),
    [
        (b"QUJDREVGR0hJSktMTU5P\nUFFS", 0, True),  # a long run: any width from 16 on
        (b"label: QUJDREVGR0hJSktMTU5P\nUFFS", 7, True),  # a blob after a label
        (b"QUJD\nREVG", 0, True),  # a narrow blob's first line, from its start
        (b"QUJDREVG\nSElK", 5, True),  # ... or three of its characters
        (b"QUJDREVG\nSElK", 6, False),  # ... not its last two: a word's end, too often
        (b"QUJD\nREVG\nSElK", 6, True),  # a narrow blob's later line: as long as the one before
        (b"waiting for sk\nrest", 12, False),  # a line of words ends no blob
        (b"pid 1574\nrest", 6, False),
        (b"  QUJD  \r\nREVG", 2, True),  # blanks around, CRLF
    ],
)
def test_a_match_crosses_a_line_break_only_where_a_blob_may_wrap(
    text: bytes, start: int, joinable: bool
) -> None:
    view = _view(text)
    at = view.first_break(start, len(view.decoded))
    assert at is not None
    assert view.joinable(at, start) is joinable


def test_text_view_offsets_map_back_to_the_output() -> None:
    text = b"ab\\u0063d\nef%67h"
    view = _view(text)
    assert view.decoded == b"abcd\nefgh"
    assert view.text == b"abcdefgh"
    # "cdef" in the text view is "\\u0063d\nef" in the output.
    first, last = view.to_decoded(2, 6)
    assert (first, last) == (2, 7)
    assert view.to_output(first, last) == (2, 12)
    assert text[2:12] == b"\\u0063d\nef"


@pytest.mark.parametrize("argv", [dump for dump in DUMPS if dump != ["xxd", "-p"]])
def test_dumps_of_the_real_tools_read_back_into_their_bytes(argv: list[str]) -> None:
    dump = subprocess.run(argv, input=SAMPLE, capture_output=True, check=True).stdout
    newlines = np.flatnonzero(np.frombuffer(dump, dtype=np.uint8) == 10)
    segments = dump_segments(dump, newlines, line_start=True, final=True)
    assert [bytes(segment.data) for segment in segments] == [SAMPLE]
    segment = segments[0]
    # Each byte maps back to its text in the dump (and on to the end of its line when a
    # text column shows it again).
    for index in (0, 100, len(SAMPLE) - 1):
        start, end = segment.start_of(index), segment.end_of(index)
        byte = SAMPLE[index]
        if argv == ["xxd", "-i"]:
            assert dump[start:end] == b"0x%02x" % byte
        elif argv[0] == "od" and argv[-1] == "-c":
            assert end - start == 4
        else:
            assert dump[start : start + 2].lower() == b"%02x" % byte
        if argv in (["xxd"], ["xxd", "-g1", "-u"], ["xxd", "-g4"], ["hexdump", "-C"]):
            assert dump[end : end + 1] == b"\n", dump[start : end + 1]


@pytest.mark.parametrize(
    "line",
    [
        b"2024-05-01 12:34:56 INFO started",
        b"12:34:56.789 request done",
        b"1700000000 epoch seconds",
        b"    def main() -> None:",
        b"be careful with that",
        b"deadbeef",  # plain hex: the text view's business
        b"",
    ],
)
def test_ordinary_lines_are_not_dump_lines(line: bytes) -> None:
    assert parse_dump_line(line) is None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=40), argv=st.sampled_from(
    [["xxd"], ["hexdump", "-C"], ["od", "-c"], ["od", "-An", "-tx1"], ["xxd", "-i"]]
))  # fmt: skip
def test_every_beginning_of_a_dump_line_may_become_one(data: bytes, argv: list[str]) -> None:
    # An unfinished line that will be a dump line must be held back, never passed on.
    dump = subprocess.run(argv, input=data, capture_output=True, check=True).stdout
    for line in dump.splitlines():
        if parse_dump_line(line) is not None:
            for end in range(len(line) + 1):
                assert may_become_dump_line(line[:end]), line[:end]


def test_value_variants_add_the_trimmed_value() -> None:
    assert value_variants(b"token\n") == [b"token\n", b"token"]
    assert value_variants(b" token \r\n") == [b" token \r\n", b" token ", b"token"]
    assert value_variants(b"abc\n") == [b"abc\n"]
    forms = {form.text for form in secret_forms(b"token-1234\n")}
    assert b"token-1234" in forms
    assert b"dG9rZW4tMTIzNA" in forms  # base64 of the trimmed value


def _pump_through(scrubber: Scrubber, writes: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    """Run `pump` on two real pipes written in the given (stream, data) order."""
    pipes = [os.pipe(), os.pipe()]
    sinks = [os.pipe(), os.pipe()]
    received: list[list[bytes]] = [[], []]

    def write() -> None:
        for stream, data in writes:
            write_all(pipes[stream][1], data)
        for _, w in pipes:
            os.close(w)

    def drain(index: int) -> None:
        while piece := os.read(sinks[index][0], 65536):
            received[index].append(piece)

    threads = [threading.Thread(target=write)]
    threads += [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    pump(scrubber, [(pipes[0][0], sinks[0][1]), (pipes[1][0], sinks[1][1])])
    for _, w in sinks:
        os.close(w)
    for thread in threads:
        thread.join()
    for r, _ in sinks:
        os.close(r)
    return b"".join(received[0]), b"".join(received[1])


def test_a_value_split_between_two_streams_is_replaced_in_both() -> None:
    value = b"tw-7d1e0c5b9a3f-DO-NOT-LEAK"
    scrubber = Scrubber({b"<v>": value})
    out, err = _pump_through(scrubber, [(0, b"key: " + value[:10]), (1, value[10:] + b" ok\n")])
    assert out == b"key: <v>"
    assert err == b"<v> ok\n"
    # Streams that do not continue each other are scrubbed each on its own.
    out, err = _pump_through(scrubber, [(0, b"a " + value + b"\n"), (1, b"plain\n")])
    assert (out, err) == (b"a <v>\n", b"plain\n")
