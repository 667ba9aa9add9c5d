"""Structured logs: one line per event, as text (`key=value`) or JSON.

Callers attach fields with `extra={"fields": {...}}`. Nothing here ever receives a token,
a body or a secret value: handlers log names and outcomes only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

# The `key=value` pairs of one event (`extra={"fields": ...}` on a record).
Fields = dict[str, Any] | None

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"fields", "message"}


# One encoder for every line: `json.dumps(..., default=str)` builds a new one per call.
_JSON = json.JSONEncoder(default=str)


class SecondClock:
    """Formats the whole second of a timestamp, reusing the text while the second lasts:
    strftime on every access line and audit event was a measurable share of a request."""

    def __init__(self, fmt: str, convert: Callable[[float], time.struct_time]) -> None:
        self.fmt = fmt
        self.convert = convert
        # One tuple, replaced whole, so a thread never pairs one second with another's text.
        self._last: tuple[int, str] = (-1, "")

    def __call__(self, timestamp: float) -> str:
        second = int(timestamp)
        last = self._last
        if last[0] != second:
            last = (second, time.strftime(self.fmt, self.convert(second)))
            self._last = last
        return last[1]


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = SecondClock("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        out = self._event(
            record.created,
            record.msecs,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "fields", None),
        )
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return _JSON.encode(out)

    def format_event(
        self, created: float, msecs: float, levelname: str, name: str, message: str, fields: Fields
    ) -> str:
        """The line `format` writes for a record of these values, without an exception."""
        return _JSON.encode(self._event(created, msecs, levelname, name, message, fields))

    def _event(
        self, created: float, msecs: float, levelname: str, name: str, message: str, fields: Fields
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ts": f"{self._clock(created)}.{int(msecs):03d}Z",
            "level": levelname.lower(),
            "logger": name,
            "msg": message,
        }
        out.update(fields or {})
        return out


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        # The format string only makes `logging.Formatter` set `asctime`: `formatMessage`
        # writes the head of the line, through the same method as `format_event`.
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._clock = SecondClock(self.default_time_format, time.localtime)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return self._time(record.created, record.msecs)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging API
        return self._head(record.asctime, record.levelname, record.name, record.message)

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record) + text_fields(getattr(record, "fields", None))

    def format_event(
        self, created: float, msecs: float, levelname: str, name: str, message: str, fields: Fields
    ) -> str:
        """The line `format` writes for a record of these values, without an exception."""
        return self._head(self._time(created, msecs), levelname, name, message) + text_fields(
            fields
        )

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging API name
        # Exception type only: tracebacks can quote locals such as request bodies.
        return f"  exception: {ei[0].__name__}" if ei and ei[0] else ""

    def _time(self, created: float, msecs: float) -> str:
        return f"{self._clock(created)},{int(msecs):03d}"

    @staticmethod
    def _head(asctime: str, levelname: str, name: str, message: str) -> str:
        # The message may carry a path, a peer's name or an exception's text.
        return f"{asctime} {levelname} {name} {escape_controls(message)}"


def escape_controls(text: str) -> str:
    """`text` with every character that is not printable (newlines, terminal escapes,
    Unicode line separators and bidi overrides) written as a Python escape: one log event
    stays one line, and what a caller chose cannot forge another line or recolour it."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def text_fields(fields: Fields) -> str:
    """`fields` as ` key=value` pairs, each escaped to stay one field ("" for none)."""
    if not fields:
        return ""
    # Most lines need no escaping at all: one check of all the text at once instead of one
    # per field, and no Python-level loop (maps and joins run in C); the result is the same
    # as the per-field path's.
    keys = list(map(str, fields))
    values = list(map(str, fields.values()))
    plain_values = "".join(values)
    if (
        all(values)
        and plain_values.isprintable()
        and " " not in plain_values
        and '"' not in plain_values
        and "".join(keys).isprintable()
    ):
        return " " + " ".join(map("=".join, zip(keys, values, strict=True)))
    return " " + " ".join(
        [
            f"{escape_controls(key)}={_text_value(value)}"
            for key, value in zip(keys, values, strict=True)
        ]
    )


def _text_value(text: str) -> str:
    if text and text.isprintable() and " " not in text and '"' not in text:
        return text
    # Quoted, with quotes and backslashes escaped, so a value stays one field.
    return '"' + escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def configure_logging(fmt: str = "text", level: str = "info") -> None:
    # Not recorded by our formatters; skipping them saves work on every access line (the
    # logging HOWTO's "Optimization" section: _srcfile = None skips the caller's frame walk).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours (and print raw paths with queries).
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.error").setLevel(max(logging.INFO, root.level))
    # The MCP SDK logs each stateless request's session at INFO; our access line says it.
    logging.getLogger("mcp").setLevel(max(logging.WARNING, root.level))
