"""The scrubber: every form of a value is replaced by its placeholder, wherever the
stream is cut, and text without secrets passes through unchanged."""

from __future__ import annotations

import base64
import json
import os
import platform
import threading
import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from service.redaction.engines import available_engines
from service.redaction.scrubber import Scrubber, scrub_fd, secret_forms, write_all

VALUE = b"sk_live_51HxQeYf2eZvKYlo2C0123456789"
OTHER = b"ghp_16C7e42F292c6912E7710c838347Ae178B4a"
PUNCTUATED = b"p@ss w/rd+&=secret!"
SCRUBBER = Scrubber({b"<secret:aa>": VALUE, b"<secret:bb>": OTHER, b"<secret:cc>": PUNCTUATED})


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


def streamed(scrubber: Scrubber, pieces: list[bytes]) -> bytes:
    stream = scrubber.stream()
    return b"".join(stream.feed(p) for p in pieces) + stream.finish()


def test_raw_value_is_replaced() -> None:
    assert SCRUBBER.scrub(b"token=" + VALUE + b"\n") == b"token=<secret:aa>\n"


def test_every_encoded_form_is_replaced() -> None:
    forms = [
        base64.b64encode(VALUE),
        base64.urlsafe_b64encode(OTHER),
        VALUE.hex().encode(),
        VALUE.hex().upper().encode(),
        urllib.parse.quote(PUNCTUATED, safe="").encode(),
        urllib.parse.quote_plus(PUNCTUATED).encode(),
    ]
    for form in forms:
        out = SCRUBBER.scrub(b"x " + form + b" y")
        assert out.count(b"<secret:") == 1, form


def test_base64_of_a_value_inside_longer_data_is_replaced() -> None:
    # `echo $TOKEN | base64`, and a Basic auth header: the value at each 3-byte alignment.
    for prefix in (b"", b"u:", b"user:", b"\n"):
        encoded = base64.b64encode(prefix + VALUE + b"\n")
        out = SCRUBBER.scrub(encoded)
        assert b"<secret:aa>" in out, prefix
        assert len(out) < len(encoded) - 30


def test_json_escaped_and_multiline_values() -> None:
    pem = b"-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    scrubber = Scrubber({b"<secret:pem>": pem})
    as_json = json.dumps({"key": pem.decode()}).encode()
    assert b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in scrubber.scrub(as_json)
    one_line = b"line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
    assert scrubber.scrub(one_line) == b"line: <secret:pem>\n"


def test_value_split_across_writes_is_replaced() -> None:
    data = b"before " + VALUE + b" middle " + base64.b64encode(OTHER) + b" after"
    for cut in range(1, len(data)):
        assert streamed(SCRUBBER, [data[:cut], data[cut:]]) == SCRUBBER.scrub(data)
    assert SCRUBBER.scrub(data) == b"before <secret:aa> middle <secret:bb> after"


def test_one_byte_writes() -> None:
    data = b"a" + VALUE + b"b" + VALUE
    assert streamed(SCRUBBER, [bytes([c]) for c in data]) == b"a<secret:aa>b<secret:aa>"


def test_longest_form_wins() -> None:
    longer = VALUE + b"-extended-suffix"
    scrubber = Scrubber({b"<s>": VALUE, b"<long>": longer})
    assert scrubber.scrub(b"[" + longer + b"]") == b"[<long>]"
    assert scrubber.scrub(b"[" + VALUE + b"]") == b"[<s>]"


def test_output_without_secrets_is_not_held_back() -> None:
    stream = SCRUBBER.stream()
    assert stream.feed(b"Password: ") == b"Password: "
    # A tail that could begin a value is held until it cannot.
    assert stream.feed(b"sk_li") == b""
    assert stream.feed(b"ne\n") == b"sk_line\n"


def test_short_values_are_not_scrubbed() -> None:
    assert secret_forms(b"abc") == []
    assert Scrubber({b"<s>": b"abc"}).scrub(b"abcabc") == b"abcabc"


def test_repr_shows_no_value() -> None:
    assert VALUE.decode() not in repr(SCRUBBER)
    assert VALUE.decode() not in repr(SCRUBBER.stream())


@settings(max_examples=200, deadline=None)
@given(
    text=st.binary(max_size=400),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
)
def test_text_without_secrets_passes_unchanged(text: bytes, cuts: list[int]) -> None:
    assert streamed(SCRUBBER, chunks(text, cuts)) == text


@settings(max_examples=200, deadline=None)
@given(
    before=st.binary(max_size=200),
    after=st.binary(max_size=200),
    form=st.sampled_from(secret_forms(VALUE)),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
)
def test_any_form_anywhere_in_any_chunking_is_removed(
    before: bytes, after: bytes, form: bytes, cuts: list[int]
) -> None:
    data = before + form + after
    out = streamed(SCRUBBER, chunks(data, cuts))
    assert form not in out
    assert b"<secret:" in out


# --- engines: hyperscan where its wheel installs, numpy everywhere ---------------------------


def reference_scrub(secrets: list[tuple[bytes, bytes]], text: bytes) -> bytes:
    """The scrubber's rule spelled out plainly: from left to right, the longest form that
    starts here is replaced; the first secret listed owns a form two secrets share."""
    owner: dict[bytes, bytes] = {}
    for placeholder, value in secrets:
        for form in secret_forms(value):
            owner.setdefault(form, placeholder)
    out, pos = [], 0
    while pos < len(text):
        here = [form for form in owner if text.startswith(form, pos)]
        if here:
            longest = max(here, key=len)
            out.append(owner[longest])
            pos += len(longest)
        else:
            out.append(text[pos : pos + 1])
            pos += 1
    return b"".join(out)


# Few distinct bytes, so values overlap, nest and share prefixes; NUL and bytes >= 0x80 too.
_CRAMPED = st.lists(st.sampled_from([b"a", b"b", b"\x00", b"\xff", b"=", b"%"]), min_size=4)
_VALUES = st.one_of(st.binary(min_size=4, max_size=24), _CRAMPED.map(b"".join))


@st.composite
def texts_with_secrets(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes, list[int]]:
    values = draw(st.lists(_VALUES, min_size=1, max_size=4))
    secrets = [(f"<p{i}>".encode(), value) for i, value in enumerate(values)]
    forms = [form for value in values for form in secret_forms(value)]
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=10))):
        form = draw(st.sampled_from(forms))
        # Whole forms, and pieces of them (near misses that must pass through unchanged).
        start = draw(st.integers(min_value=0, max_value=len(form)))
        end = draw(st.integers(min_value=start, max_value=len(form)))
        whole = draw(st.booleans())
        parts.append(form if whole else form[start:end])
        parts.append(draw(st.one_of(_CRAMPED.map(b"".join), st.binary(max_size=6))))
    cuts = draw(st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
    return secrets, b"".join(parts), cuts


def test_hyperscan_is_the_engine_where_its_wheel_exists() -> None:
    # pyproject.toml installs hyperscan on x86-64: a missing accelerator there is a bug.
    expected = "hyperscan" if platform.machine() == "x86_64" else "numpy"
    assert available_engines()[0] == expected
    assert Scrubber({b"<s>": VALUE}).engine == expected
    assert Scrubber({b"<s>": VALUE}, engine="numpy").engine == "numpy"


@settings(max_examples=200, deadline=None)
@given(case=texts_with_secrets())
def test_every_engine_gives_the_reference_output(
    case: tuple[list[tuple[bytes, bytes]], bytes, list[int]],
) -> None:
    secrets, text, cuts = case
    expected = reference_scrub(secrets, text)
    outputs = {}
    for engine in available_engines():
        scrubber = Scrubber(secrets, engine=engine)
        outputs[engine] = streamed(scrubber, chunks(text, cuts))
        assert outputs[engine] == expected, engine
        assert scrubber.scrub(text) == expected, engine
    # Same input, same output, whichever engine runs.
    assert len(set(outputs.values())) == 1


def scrub_through_pipe(scrubber: Scrubber, data: bytes, *, chunk: int = 1 << 20) -> bytes:
    """`scrub_fd` between two real pipes, fed and drained by threads as a child would be."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    received: list[bytes] = []

    def feed() -> None:
        write_all(in_w, data)
        os.close(in_w)

    def drain() -> None:
        while piece := os.read(out_r, 1 << 16):
            received.append(piece)

    threads = [threading.Thread(target=feed), threading.Thread(target=drain)]
    for thread in threads:
        thread.start()
    try:
        scrub_fd(scrubber, in_r, out_w, chunk=chunk)
    finally:
        os.close(out_w)
        for thread in threads:
            thread.join()
        os.close(in_r)
        os.close(out_r)
    return b"".join(received)


@settings(max_examples=100, deadline=None)
@given(case=texts_with_secrets(), chunk=st.integers(min_value=1, max_value=64))
def test_scrub_fd_reads_of_any_size_give_the_reference_output(
    case: tuple[list[tuple[bytes, bytes]], bytes, list[int]], chunk: int
) -> None:
    secrets, text, _ = case
    expected = reference_scrub(secrets, text)
    for engine in available_engines():
        assert scrub_through_pipe(Scrubber(secrets, engine=engine), text, chunk=chunk) == expected


def test_scrub_fd_on_a_long_stream_across_megabyte_reads() -> None:
    # Values straddle the 1 MiB read size and the pipe's own write chunks.
    data = (b"x" * 1000 + VALUE + b" " + base64.b64encode(OTHER) + b"\n") * 3000
    expected = (b"x" * 1000 + b"<secret:aa> <secret:bb>\n") * 3000
    for engine in available_engines():
        scrubber = Scrubber(
            {b"<secret:aa>": VALUE, b"<secret:bb>": OTHER, b"<secret:cc>": PUNCTUATED},
            engine=engine,
        )
        assert scrub_through_pipe(scrubber, data) == expected, engine


def test_values_with_nul_bytes_are_replaced() -> None:
    value = b"ab\x00cd\x00ef\x00gh"
    for engine in available_engines():
        scrubber = Scrubber({b"<n>": value}, engine=engine)
        assert scrubber.scrub(b"[" + value + b"]" + value.hex().encode()) == b"[<n>]<n>"


def test_start_of_a_value_at_the_end_of_a_stream_is_kept() -> None:
    # A value whose missing end is zero bytes is not "found" in the end of the stream.
    for engine in available_engines():
        scrubber = Scrubber({b"<a>": b"abcd", b"<z>": b"wxyz\x00\x00\x00"}, engine=engine)
        assert scrubber.scrub(b"..wxyz") == b"..wxyz", engine
        assert scrubber.scrub(b"..wxyz\x00\x00\x00") == b"..<z>", engine


def test_two_thread_search_finds_values_across_the_middle_of_a_long_read() -> None:
    filler = b"log line, nothing secret here\n" * 20_000  # 600 kB: searched in two halves
    middle = len(filler) // 2
    longest = secret_forms(VALUE)[0]  # the hex form: the widest overlap the halves need
    for engine in available_engines():
        scrubber = Scrubber({b"<secret:aa>": VALUE}, engine=engine)
        with scrubber.parallel_finder() as find:
            for shift in range(-len(longest) - 2, 3):
                at = middle + shift
                data = filler[:at] + longest + filler[at + len(longest) :]
                expected = [(at, at + len(longest), b"<secret:aa>")]
                assert find(data) == expected, (engine, shift)
                assert scrubber.find(data) == expected, (engine, shift)
