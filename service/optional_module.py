"""Import a compiled module that `pip install` builds only where a C compiler is found.

setup.py marks the C extensions optional: an install without a compiler still works, and
each caller then runs its pure-Python path with the same results. The absence is said
once, at debug level, by the caller's own logger, so it shows where the slower path runs.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType


def import_optional(name: str, log: logging.Logger, absent: str) -> ModuleType | None:
    """The module `name`, or None after logging `absent` at debug level when not built."""
    try:
        return importlib.import_module(name)
    except ImportError:
        log.debug(absent)
        return None
