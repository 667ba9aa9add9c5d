"""The scrubber: every form of a value — raw, escaped, encoded, wrapped, dumped — is replaced
by its placeholder, wherever the stream is cut, and text without secrets passes through
unchanged and undelayed. Both engines give the output of a plain reference."""

from __future__ import annotations

import base64
import json
import os
import platform
import subprocess
import threading
import tracemalloc
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.redaction.engines import available_engines
from service.redaction.forms import secret_forms
from service.redaction.scrubber import Scrubber, ScrubStream, scrub_fd, write_all
from tests.agent.conftest import DUMPS
from tests.agent.redact_reference import reference_scrub

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


def tool(argv: list[str], data: bytes) -> bytes:
    """The output of a real coreutils/xxd/hexdump command on `data`."""
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout


def test_raw_value_is_replaced() -> None:
    assert SCRUBBER.scrub(b"token=" + VALUE + b"\n") == b"token=<secret:aa>\n"


def test_every_encoded_form_is_replaced() -> None:
    forms = [
        base64.b64encode(VALUE),
        base64.urlsafe_b64encode(OTHER),
        base64.urlsafe_b64encode(OTHER).rstrip(b"="),
        base64.b32encode(VALUE),
        base64.b32encode(VALUE).lower(),
        VALUE.hex().encode(),
        VALUE.hex().upper().encode(),
        VALUE.hex(" ").encode(),
        VALUE.hex(":").upper().encode(),
        urllib.parse.quote(PUNCTUATED, safe="").encode(),
        urllib.parse.quote_plus(PUNCTUATED).encode(),
        json.dumps(PUNCTUATED.decode())[1:-1].replace("&", "\\u0026").replace("/", "\\/").encode(),
        b"".join(b"&#x%x;" % c for c in VALUE),
        b"p&#64;ss w&sol;rd&plus;&amp;&equals;secret&excl;",
        b"".join(b"\\x%02x" % c for c in OTHER),
    ]
    for form in forms:
        out = SCRUBBER.scrub(b"x " + form + b" y")
        assert out.count(b"<secret:") == 1, form
        assert out.startswith(b"x <secret:"), form
        assert out.endswith(b"> y"), form


@pytest.mark.parametrize("prefix", [b"", b"u:", b"user:", b"\n", b"x" * 7])
def test_base64_of_a_value_inside_longer_data_is_replaced(prefix: bytes) -> None:
    # `echo $TOKEN | base64`, and a Basic auth header: the value at each 3-byte alignment.
    for suffix in (b"", b"\n", b":"):
        encoded = base64.b64encode(prefix + VALUE + suffix)
        out = SCRUBBER.scrub(encoded)
        assert b"<secret:aa>" in out, (prefix, suffix)
        assert len(out) < len(encoded) - 30


@pytest.mark.parametrize("password", [b"hunter", b"p4ss", b"abcde", b"s3cr3t!"])
@pytest.mark.parametrize("user", [b"", b"a", b"ab", b"abc", b"alice"])
def test_short_basic_auth_passwords_are_replaced_at_every_alignment(
    password: bytes, user: bytes
) -> None:
    scrubber = Scrubber({b"<pw>": password})
    prefix = b"Authorization: Basic "
    out = scrubber.scrub(prefix + base64.b64encode(user + b":" + password) + b"\r\n")
    left, placeholder, right = out[len(prefix) :].partition(b"<pw>")
    assert placeholder
    assert right == b"\r\n"
    # What is left before it encodes the user name and the colon, at most one character
    # more (the one that holds their last bits and the password's first).
    assert len(left) <= -(-(len(user) + 1) * 4 // 3)


def test_a_key_used_as_the_basic_auth_user_name_is_replaced() -> None:
    # Stripe style: `curl -u sk_live_…:` sends base64("sk_live_…:").
    out = SCRUBBER.scrub(b"Basic " + base64.b64encode(VALUE + b":"))
    assert out == b"Basic <secret:aa>"


@pytest.mark.parametrize("width", [1, 4, 5, 57, 60, 64, 76, 1000])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_wrapped_encodings_at_any_width_are_replaced(width: int, newline: bytes) -> None:
    data = b"hello " + VALUE + b" world"
    for encoded in (
        base64.b64encode(data),
        base64.urlsafe_b64encode(data).rstrip(b"="),
        base64.b32encode(data),
        data.hex().encode(),
    ):
        wrapped = newline.join(encoded[i : i + width] for i in range(0, len(encoded), width))
        out = SCRUBBER.scrub(b"blob:\n" + wrapped + newline)
        assert b"<secret:aa>" in out, (width, encoded[:10])
        assert encoded not in out.replace(newline, b"")


@pytest.mark.parametrize("argv", [*DUMPS, ["base32"], ["base64", "-w", "7"]])
@pytest.mark.parametrize("before", [b"", b"abc", b"0123456789abcdef0"])
def test_dumps_made_by_the_real_tools_are_replaced(argv: list[str], before: bytes) -> None:
    out = SCRUBBER.scrub(tool(argv, before + VALUE + b"\n"))
    assert b"<secret:aa>" in out, out
    # Not a run of the value's bytes survives in any column of the dump.
    for k in range(0, len(VALUE) - 8, 4):
        piece = VALUE[k : k + 8]
        assert piece not in out, (argv, k)
        assert piece.hex().encode() not in out, (argv, k)


def test_a_trimmed_value_is_replaced_when_the_source_kept_its_newline() -> None:
    scrubber = Scrubber({b"<dir>": VALUE + b"\n"})
    assert scrubber.scrub(b"[" + VALUE + b"]") == b"[<dir>]"
    assert scrubber.scrub(base64.b64encode(VALUE)) == b"<dir>"


def test_json_escaped_and_multiline_values() -> None:
    pem = b"-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    scrubber = Scrubber({b"<secret:pem>": pem})
    as_json = json.dumps({"key": pem.decode()}).encode()
    assert scrubber.scrub(as_json) == b'{"key": "<secret:pem>"}'
    assert scrubber.scrub(pem + b"\n") == b"<secret:pem>\n"
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
    assert stream.feed(b"Downloading... 45% done\n") == b"Downloading... 45% done\n"
    # A tail that could begin a value is held until it cannot.
    assert stream.feed(b"sk_li") == b""
    assert stream.feed(b"ne!\n") == b"sk_line!\n"
    # A line of words ends no wrapped encoded text: nothing after its break is waited for.
    assert stream.feed(b"waiting for sk\n") == b"waiting for sk\n"


def test_an_unfinished_escape_is_held_until_it_ends() -> None:
    stream = SCRUBBER.stream()
    escaped = urllib.parse.quote(VALUE, safe="").replace("_", "%5F").encode()
    assert stream.feed(escaped[:9]) == b""
    assert stream.feed(escaped[9:]) + stream.finish() == b"<secret:aa>"
    stream = SCRUBBER.stream()
    assert stream.feed(b"100%") == b"100"
    assert stream.feed(b" done") + stream.finish() == b"% done"


def test_an_unfinished_dump_line_is_held_until_it_ends() -> None:
    dump = tool(["xxd"], VALUE)
    stream = SCRUBBER.stream()
    assert stream.feed(dump[:20]) == b""
    assert stream.feed(dump[20:]) + stream.finish() == b"00000000: <secret:aa>\n"


def test_short_values_are_not_scrubbed() -> None:
    assert secret_forms(b"abc") == []
    assert Scrubber({b"<s>": b"abc"}).scrub(b"abcabc") == b"abcabc"


def test_repr_shows_no_value() -> None:
    assert VALUE.decode() not in repr(SCRUBBER)
    assert VALUE.decode() not in repr(SCRUBBER.stream())
    assert all(VALUE.decode() not in repr(form) for form in secret_forms(VALUE))


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
    form=st.sampled_from([form.text for form in secret_forms(VALUE)]),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
)
def test_any_form_anywhere_in_any_chunking_is_removed(
    before: bytes, after: bytes, form: bytes, cuts: list[int]
) -> None:
    data = before + form + after
    out = streamed(SCRUBBER, chunks(data, cuts))
    assert form not in out
    assert b"<secret:" in out


# --- memory and time linear in the secrets' size -------------------------------------------


def test_building_for_a_long_secret_takes_memory_linear_in_its_size() -> None:
    # A set of every prefix of every form took 2.4 GiB for one 16 KB secret.
    value = base64.b64encode(os.urandom(12 * 1024))  # 16 KB
    tracemalloc.start()
    try:
        scrubber = Scrubber({b"<big>": value})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * len(value), peak
    stream = scrubber.stream()
    text = b"a line of ordinary output\n" * 4000
    assert stream.feed(text) == text
    assert stream.feed(value[:10_000]) == b""
    assert stream.feed(value[10_000:]) + stream.finish() == b"<big>"


# --- engines: hyperscan where its wheel installs, numpy everywhere ---------------------------

# Few distinct bytes, so values overlap, nest and share prefixes; NUL, escapes, breaks too,
# and whole escapes of each kind (a value holding them is searched in the one-kind views).
_CRAMPED = st.lists(
    st.sampled_from(
        [b"a", b"b", b"\x00", b"\xff", b"=", b"%", b"&", b"\\", b"\n", b" ", b"0"]
        + [b"&amp;", b"%41", b"\\n"]
    ),
    min_size=4,
)
_VALUES = st.one_of(st.binary(min_size=4, max_size=24), _CRAMPED.map(b"".join))


def _wrapped(encoded: bytes, width: int, newline: bytes) -> bytes:
    return newline.join(encoded[i : i + width] for i in range(0, len(encoded), width))


@st.composite
def printed(draw: st.DrawFn, value: bytes) -> bytes:
    """`value` as some printer would show it: encoded at an alignment, wrapped, escaped."""
    data = draw(st.binary(max_size=3)) + value + draw(st.binary(max_size=3))
    width = draw(st.integers(min_value=1, max_value=80))
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    kind = draw(st.integers(min_value=0, max_value=7))
    if kind == 0:
        return _wrapped(base64.b64encode(data), width, newline)
    if kind == 1:
        return _wrapped(base64.urlsafe_b64encode(data).rstrip(b"="), width, newline)
    if kind == 2:
        return _wrapped(base64.b32encode(data), width, newline)
    if kind == 3:
        return _wrapped(data.hex().encode(), width, newline)
    escape = draw(st.sampled_from([b"\\u%04x", b"%%%02X", b"&#%d;", b"&#x%x;", b"\\x%02x"]))
    picks = draw(st.lists(st.booleans(), min_size=len(value), max_size=len(value)))
    return b"".join(
        escape % byte if pick else bytes([byte]) for byte, pick in zip(value, picks, strict=True)
    )


@st.composite
def texts_with_secrets(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes, list[int]]:
    values = draw(st.lists(_VALUES, min_size=1, max_size=4))
    secrets = [(f"<p{i}>".encode(), value) for i, value in enumerate(values)]
    forms = [form.text for value in values for form in secret_forms(value)]
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        if forms and draw(st.booleans()):
            form = draw(st.sampled_from(forms))
            # Whole forms, and pieces of them (near misses that must pass unchanged).
            start = draw(st.integers(min_value=0, max_value=len(form)))
            end = draw(st.integers(min_value=start, max_value=len(form)))
            parts.append(form if draw(st.booleans()) else form[start:end])
        else:
            parts.append(draw(printed(draw(st.sampled_from(values)))))
        parts.append(draw(st.one_of(_CRAMPED.map(b"".join), st.binary(max_size=6))))
    cuts = draw(st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
    return secrets, b"".join(parts), cuts


def test_hyperscan_is_the_engine_where_its_wheel_exists() -> None:
    # pyproject.toml installs hyperscan on x86-64: a missing accelerator there is a bug.
    expected = "hyperscan" if platform.machine() == "x86_64" else "numpy"
    assert available_engines()[0] == expected
    assert Scrubber({b"<s>": VALUE}).engine == expected
    assert Scrubber({b"<s>": VALUE}, engine="numpy").engine == "numpy"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=texts_with_secrets())
def test_every_engine_gives_the_reference_output(
    case: tuple[list[tuple[bytes, bytes]], bytes, list[int]],
) -> None:
    secrets, text, cuts = case
    expected = reference_scrub(secrets, text)
    for engine in available_engines():
        scrubber = Scrubber(secrets, engine=engine)
        assert streamed(scrubber, chunks(text, cuts)) == expected, engine
        assert scrubber.scrub(text) == expected, engine


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.binary(min_size=4, max_size=40),
    before=st.binary(max_size=20),
    argv=st.sampled_from(
        [["xxd"], ["xxd", "-p"], ["hexdump", "-C"], ["od", "-c"], ["od", "-An", "-tx1"]]
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
)
def test_real_dumps_in_any_chunking_give_the_reference_output(
    value: bytes, before: bytes, argv: list[str], cuts: list[int]
) -> None:
    secrets = [(b"<v>", value)]
    text = b"output:\n" + tool(argv, before + value) + b"done\n"
    expected = reference_scrub(secrets, text)
    assert b"<v>" in expected
    for engine in available_engines():
        assert streamed(Scrubber(secrets, engine=engine), chunks(text, cuts)) == expected


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


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    longest = secret_forms(VALUE)[0].text
    for engine in available_engines():
        scrubber = Scrubber({b"<secret:aa>": VALUE}, engine=engine)
        with scrubber.parallel_search() as search:
            for shift in range(-len(longest) - 2, 3):
                at = middle + shift
                data = filler[:at] + longest + filler[at + len(longest) :]
                stream = ScrubStream(scrubber, search)  # the two-thread search of scrub_fd
                out = stream.feed(data) + stream.finish()
                assert out.count(b"<secret:aa>") == 1, (engine, shift)
                assert longest not in out, (engine, shift)
