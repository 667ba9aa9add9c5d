"""A value that holds escapes of its own (`&amp;`, `&#x41;`, `%41`, `\\n`, `\\u0041`, a
lone backslash) is scrubbed raw and in every escaped form the scrubber covers. A printer
escapes a value in one kind of escaping only, so another kind's escape in the value stays
as it is in the output; the text view, which decodes every kind at once, would decode it
too and no longer show the value. Run on both the compiled and the pure line pass, whole
and split across two reads, and once through `patina secrets redact`."""

from __future__ import annotations

import functools
import html
import json
import urllib.parse
from itertools import permutations
from pathlib import Path

import pytest

from bench.redact.plants import PRINTERS, Printer
from service.redaction import compiled
from service.redaction.scrubber import Scrubber
from tests.agent.conftest import add_secret, patina

# Text that some view decodes (HTML, percent and JSON escapes, a backslash) or that a
# printer escapes (`/` as PHP's `\/`, a line feed as `\n`).
PIECES = [b"&amp;", b"&#x41;", b"%41", b"\\n", b"\\u0041", b"\\", b"/", b"\n"]
VALUES = [
    *(b"tok9" + piece + b"Qz7Xw3k" for piece in PIECES),
    *(b"tok9" + first + b"Qz7" + second + b"Xw3k" for first, second in permutations(PIECES, 2)),
    b"tok9" + b"".join(PIECES) + b"Qz7Xw3k",
    b'p@ss%word&amp;\\n"quoted"/x',
]
# Escapers named in docs/agent-secrets.md that the benchmark does not plant (it prints
# JSON the Go and PHP way, percent with every byte quoted, HTML a reference every other
# character): each escapes fewer characters, so more of another kind's escapes survive.
ESCAPERS: dict[str, Printer] = {
    "json": lambda v: json.dumps(v.decode("latin-1")).encode(),
    "json-ascii": lambda v: json.dumps(v.decode("latin-1"), ensure_ascii=True).encode(),
    "html-escape": lambda v: html.escape(v.decode("latin-1")).encode(),
    "html-escape-noquote": lambda v: html.escape(v.decode("latin-1"), quote=False).encode(),
    "quote": lambda v: urllib.parse.quote(v).encode(),
    "quote-plus": lambda v: urllib.parse.quote_plus(v).encode(),
    "repr-bytes": lambda v: repr(v)[2:-1].encode(),
}
FORMS = {**PRINTERS, **ESCAPERS}
FILLER = b"GET /status 200 ok &lt; %20 \\t\nplain words here\n"
PLACEHOLDER = b"<secret>"


@functools.cache
def _scrubber(value: bytes) -> Scrubber:
    return Scrubber([(PLACEHOLDER, value)])


@pytest.fixture(params=["compiled", "pure"])
def line_pass(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on the compiled line pass and on the pure one."""
    if request.param == "pure":
        monkeypatch.setattr(compiled, "fastscan", None)
    else:
        assert compiled.fastscan is not None, "make dev builds the compiled line pass"
    return str(request.param)


def _split(scrubber: Scrubber, data: bytes, cut: int) -> bytes:
    stream = scrubber.stream()
    return stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.finish()


@pytest.mark.usefixtures("line_pass")
@pytest.mark.parametrize("name", sorted(FORMS))
def test_a_value_holding_escapes_is_found_in_every_form(name: str) -> None:
    printer = FORMS[name]
    for value in VALUES:
        body = printer(value)
        text = FILLER + body + b"\n" + FILLER
        scrubber = _scrubber(value)
        whole = scrubber.scrub(text)
        assert PLACEHOLDER in whole, (name, value)
        assert value not in whole, (name, value)
        assert body not in whole, (name, value)
        assert whole.startswith(FILLER), (name, value)
        assert whole.endswith(b"\n" + FILLER), (name, value)
        # Read in two pieces, cut in the middle of the printed value: the same output.
        middle = len(FILLER) + len(body) // 2
        assert _split(scrubber, text, middle) == whole, (name, value)


@pytest.mark.usefixtures("line_pass")
def test_another_kinds_escape_next_to_a_value_is_left_alone() -> None:
    # The one-kind views decode only the printer's escapes: an HTML reference and a
    # percent escape around a JSON-escaped value stay in the output, decoded nowhere.
    value = b"tok9&amp;Qz7\\nXw3k"
    printed = json.dumps(value.decode()).replace("/", "\\/").encode()
    text = b"&lt;a href=%22" + printed + b"%22&gt; \\u0041\n"
    expected = b'&lt;a href=%22"' + PLACEHOLDER + b'"%22&gt; \\u0041\n'
    assert _scrubber(value).scrub(text) == expected


def test_redact_cli_hides_a_value_holding_escapes(home: Path) -> None:
    value = "tw-5e8a&amp;&#x41;%41\\n\\u0041\\x/y\nDO-NOT-LEAK"
    add_secret(home, "ESCAPED", value)
    raw = value.encode()
    printed = [FORMS[name](raw) for name in ("raw", "json", "json-php", "html-escape", "quote")]
    data = b"\n".join(b"line " + body + b" end" for body in printed) + b"\n"
    result = patina(home, "secrets", "redact", "--source", "vault", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"${secret:ESCAPED}") == len(printed), result.stdout
    for body in printed:
        assert body not in result.stdout
    assert b"DO-NOT-LEAK" not in result.stdout
    assert b"tw-5e8a" not in result.stdout
