"""Every log field is one line: what a caller or a file name brings cannot forge a line."""

from __future__ import annotations

import json
import logging

import pytest

from service.logs import JsonFormatter, TextFormatter, text_fields

HOSTILE = "x\nINFO patina forged=1\r\x1b[31m\u2028\u202eevil\x85"


def _record() -> logging.LogRecord:
    record = logging.LogRecord("patina", logging.INFO, "", 0, "path %s gone", (HOSTILE,), None)
    record.fields = {"reason": HOSTILE, HOSTILE: "key", "plain": "ok", "spaced": 'a "b"'}
    return record


def test_text_lines_escape_control_characters_in_the_message_and_every_field() -> None:
    line = TextFormatter().format(_record())
    assert line.isprintable()
    assert "\\n" in line
    assert "\\x1b" in line
    assert "\\u2028" in line
    assert "plain=ok" in line
    assert 'spaced="a \\"b\\""' in line


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_a_hostile_value_stays_on_one_line(formatter: logging.Formatter) -> None:
    line = formatter.format(_record())
    assert len(line.splitlines()) == 1
    assert "\x1b" not in line


def test_json_lines_keep_the_value_exactly() -> None:
    event = json.loads(JsonFormatter().format(_record()))
    assert event["reason"] == HOSTILE
    assert event["msg"] == f"path {HOSTILE} gone"


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            {"plain": "ok", "status": 200, "ms": 0.5, "none": None},
            " plain=ok status=200 ms=0.5 none=None",
        ),
        ({"empty": ""}, ' empty=""'),
        ({"spaced key": "v", "path": "a\\b"}, " spaced key=v path=a\\b"),
        ({"ok": "fine", "spaced": "a b\\c"}, ' ok=fine spaced="a b\\\\c"'),
        ({"ok": "fine", "line": "a\nb"}, ' ok=fine line="a\\nb"'),
        ({"k\x1bey": "v"}, " k\\x1bey=v"),
        ({}, ""),
    ],
)
def test_fields_are_written_the_same_whether_or_not_one_needs_escaping(
    fields: dict[str, object], text: str
) -> None:
    assert text_fields(fields) == text
