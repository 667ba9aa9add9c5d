"""The access line's short path writes what `logging` would, where logging says, or nothing."""

from __future__ import annotations

import io
import itertools
import json
import logging
import time
from typing import Any

import pytest

from service.event_log import EventLog
from service.logs import JsonFormatter, TextFormatter

HOSTILE = "x\nINFO patina.access forged=1\r\x1b[31m\u2028\u202eevil\x85"
FIELDS: dict[str, Any] = {
    "request_id": "abc-1",
    "transport": "uds",
    "principal": HOSTILE,
    "method": "GET",
    "route": '/a "b" c',
    "status": 200,
    "duration_ms": 0.125,
}
NOW = 1764662400.987654
_names = itertools.count()


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Records and the short path read the same clock: their lines can be compared whole.
    monkeypatch.setattr(time, "time", lambda: NOW)


def _logger(level: int = logging.INFO) -> logging.Logger:
    """A logger of its own, outside the root's (and pytest's) handlers."""
    logger = logging.getLogger(f"patina.test-event-log.{next(_names)}")
    logger.propagate = False
    logger.setLevel(level)
    return logger


def _handler(
    formatter: logging.Formatter, level: int = logging.NOTSET
) -> logging.StreamHandler[Any]:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    handler.setLevel(level)
    return handler


def _written(handler: logging.StreamHandler[Any]) -> str:
    stream = handler.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _one_event(formatter: logging.Formatter, *, through_record: bool) -> str:
    handler = _handler(formatter)
    if through_record:
        handler.addFilter(lambda record: True)
    logger = logging.getLogger("patina.test-event-log.same-name")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers = [handler]
    EventLog(logger, "request").write(logging.INFO, dict(FIELDS))
    return _written(handler)


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
def test_the_short_path_writes_the_line_a_log_record_would(
    formatter: type[logging.Formatter],
) -> None:
    short = _one_event(formatter(), through_record=False)
    recorded = _one_event(formatter(), through_record=True)
    assert short == recorded
    assert short.endswith("\n")
    assert short.count("\n") == 1


@pytest.mark.usefixtures("frozen_clock")
def test_the_text_access_line_has_every_field_with_control_characters_escaped() -> None:
    line = _one_event(TextFormatter(), through_record=False).rstrip("\n")
    assert line.isprintable()
    assert "\x1b" not in line
    assert "\\x1b" in line
    assert "\\u2028" in line
    assert "\\n" in line
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW))
    assert line.startswith(f"{stamp},987 INFO patina.test-event-log.same-name request ")
    assert " request_id=abc-1 transport=uds principal=" in line
    assert ' method=GET route="/a \\"b\\" c" status=200 duration_ms=0.125' in line


@pytest.mark.usefixtures("frozen_clock")
def test_the_json_access_line_keeps_every_field_exactly_on_one_line() -> None:
    line = _one_event(JsonFormatter(), through_record=False)
    assert len(line.splitlines()) == 1
    assert "\x1b" not in line
    event = json.loads(line)
    assert event == {
        "ts": "2025-12-02T08:00:00.987Z",
        "level": "info",
        "logger": "patina.test-event-log.same-name",
        "msg": "request",
        **FIELDS,
    }


@pytest.mark.parametrize(
    ("logger_level", "event_level"),
    [(logging.WARNING, logging.INFO), (logging.INFO, logging.DEBUG)],
)
def test_an_event_below_the_logger_level_is_not_written(
    logger_level: int, event_level: int
) -> None:
    logger, handler = _logger(logger_level), _handler(TextFormatter())
    logger.addHandler(handler)
    events = EventLog(logger, "request")
    assert not events.enabled_for(event_level)
    events.write(event_level, dict(FIELDS))
    assert _written(handler) == ""


def test_a_disabled_logger_writes_nothing() -> None:
    logger, handler = _logger(), _handler(TextFormatter())
    logger.addHandler(handler)
    logger.disabled = True
    events = EventLog(logger, "request")
    assert not events.enabled_for(logging.INFO)
    events.write(logging.INFO, dict(FIELDS))
    assert _written(handler) == ""


def test_each_handler_level_is_respected() -> None:
    logger = _logger(logging.DEBUG)
    quiet, verbose = _handler(TextFormatter(), logging.WARNING), _handler(JsonFormatter())
    logger.addHandler(quiet)
    logger.addHandler(verbose)
    EventLog(logger, "request").write(logging.INFO, dict(FIELDS))
    assert _written(quiet) == ""
    assert json.loads(_written(verbose))["status"] == 200


def test_the_line_reaches_handlers_up_the_hierarchy_until_propagation_stops() -> None:
    parent = _logger()
    child = logging.getLogger(f"{parent.name}.access")
    child.setLevel(logging.NOTSET)
    above, own = _handler(TextFormatter()), _handler(TextFormatter())
    parent.addHandler(above)
    child.addHandler(own)
    EventLog(child, "request").write(logging.INFO, dict(FIELDS))
    assert f" INFO {child.name} request " in _written(above)
    assert _written(own) == _written(above)
    child.propagate = False
    EventLog(child, "request").write(logging.INFO, {"status": 404})
    assert "status=404" in _written(own)
    assert "status=404" not in _written(above)


def test_a_handler_of_another_kind_gets_a_record_with_the_fields() -> None:
    logger = _logger()
    plain, collecting = _handler(TextFormatter()), Collecting()
    logger.addHandler(plain)
    logger.addHandler(collecting)
    EventLog(logger, "request").write(logging.INFO, dict(FIELDS))
    [record] = collecting.records
    assert record.getMessage() == "request"
    assert record.levelno == logging.INFO
    assert record.fields == FIELDS  # type: ignore[attr-defined]
    assert "request_id=abc-1" in _written(plain)


def test_a_logger_filter_still_decides() -> None:
    logger, handler = _logger(), _handler(TextFormatter())
    logger.addHandler(handler)
    logger.addFilter(lambda record: record.fields["status"] != 200)  # type: ignore[attr-defined]
    events = EventLog(logger, "request")
    events.write(logging.INFO, dict(FIELDS))
    events.write(logging.INFO, {**FIELDS, "status": 500})
    assert "status=200" not in _written(handler)
    assert "status=500" in _written(handler)


class Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("disk full")


def test_a_failed_write_goes_to_the_handlers_error_hook_and_the_caller_carries_on() -> None:
    logger, handler = _logger(), _handler(TextFormatter())
    handler.setStream(Broken())
    failures: list[logging.LogRecord] = []
    handler.handleError = failures.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    EventLog(logger, "request").write(logging.INFO, dict(FIELDS))
    [record] = failures
    assert record.getMessage() == "request"


def test_no_handler_anywhere_falls_back_to_logging_s_last_resort(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    last_resort = Collecting()
    monkeypatch.setattr(logging, "lastResort", last_resort)
    EventLog(_logger(), "request").write(logging.WARNING, {"status": 503})
    [record] = last_resort.records
    assert record.fields == {"status": 503}  # type: ignore[attr-defined]
