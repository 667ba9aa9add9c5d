"""The scrubber: every form of a value is replaced by its placeholder, wherever the
stream is cut, and text without secrets passes through unchanged."""

from __future__ import annotations

import base64
import json
import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from service.secrets.redact import Scrubber, secret_forms

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
