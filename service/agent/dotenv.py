"""dotenv parsing: `KEY=value` lines, comments, quotes. Used by the sidecar's dotenv source and
by the vault, whose plaintext is dotenv.

Grammar, one assignment per logical line:

* blank lines and lines whose first non-blank character is `#` are ignored;
* an optional `export ` prefix is accepted (files that are also sourced by a shell);
* `KEY` matches `[A-Za-z0-9_]{1,128}` (the broker's secret-name rule);
* an unquoted value is trimmed, and ` #` starts a trailing comment;
* `'single quoted'` values are literal and may span lines;
* `"double quoted"` values may span lines and understand `\\n \\r \\t \\" \\\\ \\$`;
* a key given twice is an error (a silent "last one wins" hides mistakes).

Errors name the line number and the problem, never any text of the line: a malformed line
may well be a value pasted on its own.
"""

from __future__ import annotations

import re

from service.secret_names import valid_name

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse dotenv text into a mapping, or raise ValueError naming the bad line's number."""
    result: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.rstrip()
        if not sep:
            raise ValueError(f"line {number}: expected KEY=value")
        if not valid_name(key):
            raise ValueError(f"line {number}: invalid key (allowed: A-Z a-z 0-9 _, 1-128 chars)")
        if key in result:
            raise ValueError(f"line {number}: duplicate key {key}")
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            value, index = _quoted(rest, lines, index, number)
        else:
            value = _unquoted(rest)
        result[key] = value
    return result


def _unquoted(rest: str) -> str:
    # A '#' starts a comment only after whitespace, so `pa#ss` stays whole.
    match = re.search(r"\s#", rest)
    if match:
        rest = rest[: match.start()]
    return rest.strip()


def _quoted(rest: str, lines: list[str], index: int, number: int) -> tuple[str, int]:
    """Read a quoted value starting at `rest` (its opening quote), continuing onto the
    following lines until the closing quote. Returns the value and the next line index."""
    quote = rest[0]
    text = rest[1:]
    out: list[str] = []
    while True:
        pos = 0
        while pos < len(text):
            char = text[pos]
            if char == quote:
                trailer = text[pos + 1 :].strip()
                if trailer and not trailer.startswith("#"):
                    raise ValueError(f"line {number}: unexpected text after the closing quote")
                return "".join(out), index
            if quote == '"' and char == "\\" and pos + 1 < len(text):
                escaped = text[pos + 1]
                out.append(_ESCAPES.get(escaped, "\\" + escaped))
                pos += 2
                continue
            out.append(char)
            pos += 1
        if index >= len(lines):
            raise ValueError(f"line {number}: unterminated quoted value")
        out.append("\n")
        text = lines[index]
        index += 1
