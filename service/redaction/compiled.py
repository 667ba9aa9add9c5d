"""The scrubber's compiled line pass (_fastscan.c), or None where it was not built.

`pip install` builds it where a C compiler is found (setup.py marks it optional); without it
the scrubber runs the same steps in numpy and bytes methods (lines.py), with the same
results, only slower. Tests set `fastscan` to None to run the pure path.
"""

from __future__ import annotations

import logging
from typing import Protocol, cast

from service.optional_module import import_optional

_log = logging.getLogger(__name__)


class LinePass(Protocol):
    """What _fastscan.c offers (offsets are native int64 values packed in bytes)."""

    def scan_lines(self, data: bytes, /) -> tuple[bytes, bytes, bytes, bytes]:
        """Offsets of the line breaks (`\\r` and `\\n`), of the line feeds, `data` without
        line breaks, and the starts of the lines that may be dump lines."""
        ...

    def remove_breaks(self, data: bytes, /) -> bytes:
        """`data` without `\\r` and `\\n`."""
        ...


def load() -> LinePass | None:
    """The compiled module, or None (said once, in a debug log) where it is absent."""
    module = import_optional(
        "service.redaction._fastscan",
        _log,
        "secret scrubber: compiled line pass not built, using the pure-Python path",
    )
    return None if module is None else cast(LinePass, module)


fastscan = load()
