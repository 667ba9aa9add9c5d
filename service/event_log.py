"""One log event per request, written without a `logging.LogRecord` when that is exact.

The access line is written on every request, and the standard path (a LogRecord, the
logger's and each handler's filters and lock, `%` formatting) was the largest single cost
of a secret read. `EventLog.write` takes the short path only when the line it writes is
the one `logging` would have written: every handler that the event reaches through the
logger hierarchy (levels and `propagate` as configured now, read on every call) is a plain
`logging.StreamHandler` with no filters and one of our formatters, and the logger has no
filters. Anything else (a file handler, pytest's capture, a filter, no handler at all)
gets an ordinary record through `Logger.log`, so the logging configuration stays the one
place that decides where, whether and how a line is written.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from service.logs import Fields, JsonFormatter, TextFormatter

# Exact types: a subclass may write its lines differently (a FileHandler opens its file
# on the first record), so it gets records.
_FORMATTERS = (TextFormatter, JsonFormatter)


class EventLog:
    """Writes events of one message to `logger`, as `logger.log(level, message,
    extra={"fields": fields})` would."""

    def __init__(self, logger: logging.Logger, message: str) -> None:
        self.logger = logger
        self.message = message

    def enabled_for(self, level: int) -> bool:
        """Whether an event at `level` would be written (the logger's level and `disabled`)."""
        return self.logger.isEnabledFor(level)

    def write(self, level: int, fields: Fields) -> None:
        """Writes one event, if the logger is enabled for `level`."""
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        handlers = _plain_handlers(logger, level)
        if handlers is None:
            logger.log(level, self.message, extra={"fields": fields})
            return
        # The record's own arithmetic, so both paths print the same milliseconds.
        created = time.time()
        msecs = int((created - int(created)) * 1000) + 0.0
        levelname = logging.getLevelName(level)
        for handler in handlers:
            formatter = handler.formatter
            assert isinstance(formatter, _FORMATTERS)
            line = formatter.format_event(
                created, msecs, levelname, logger.name, self.message, fields
            )
            handler.acquire()
            try:
                handler.stream.write(line + handler.terminator)
                handler.flush()
            except RecursionError:
                raise
            except Exception:
                # What StreamHandler.emit does with a failed write (logging.raiseExceptions).
                handler.handleError(
                    logger.makeRecord(
                        logger.name, level, "", 0, self.message, (), None, extra={"fields": fields}
                    )
                )
            finally:
                handler.release()


def _plain_handlers(logger: logging.Logger, level: int) -> list[logging.StreamHandler[Any]] | None:
    """The handlers an event at `level` reaches from `logger`, as `Logger.callHandlers`
    walks them, or None when one of them (or a filter) needs a real record."""
    if logger.filters:
        return None
    found: list[logging.StreamHandler[Any]] = []
    seen = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            seen = True
            if level < handler.level:
                continue
            if (
                type(handler) is not logging.StreamHandler
                or handler.filters
                or type(handler.formatter) not in _FORMATTERS
            ):
                return None
            found.append(handler)
        current = current.parent if current.propagate else None
    # No handler at all: logging's last resort (and its warning) decides, with a record.
    return found if seen else None
