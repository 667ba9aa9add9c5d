"""The secret-name rule, one for both sides: the broker and its routes, the sidecar's
sources, the age vault, dotenv files and the `${secret:NAME}` references `secrets run`
resolves. Imports nothing of the package."""

from __future__ import annotations

import re

NAME_PATTERN = r"[A-Za-z0-9_]{1,128}"
NAME_RULE = f"names must match ^{NAME_PATTERN}$"
_NAME = re.compile(NAME_PATTERN)


def valid_name(name: str) -> bool:
    """True when `name` is a legal secret name."""
    return _NAME.fullmatch(name) is not None
