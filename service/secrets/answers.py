"""Keeps the broker's values out of answers that are not secret reads.

A scry answer quotes indexed files, and a file can hold a value the broker also holds (a
token pasted into a note, a `.env` the indexer did not skip). Before any such answer leaves
the service, its texts pass through the same Scrubber as `patina secrets run`: every value
the broker holds, raw or encoded (base64, hex, URL, JSON-escaped, each long line of a
multi-line value), is replaced by a placeholder chosen for the caller:

* `${secret:NAME}` when the caller may read NAME: the reference `patina secrets run`
  resolves, so an agent can still use what it found;
* `[REDACTED]` otherwise: a caller without rights learns neither the value nor the name.

The Scrubber is rebuilt when the set changes (push or clear), never per answer. Its
patterns carry a random marker per build plus the secret's name, and the placeholder is
put in after scrubbing, per caller; the marker never leaves this module, so text that
merely looks like a placeholder is left alone.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from service.principal import Principal
from service.redaction.scrubber import Scrubber
from service.secret_names import NAME_PATTERN

REDACTED = "[REDACTED]"
_SEPARATOR = b"\n"


@dataclass(frozen=True)
class CompiledValues:
    """One build of a set: the scrubber and how to find its markers in scrubbed text.
    Never shows a value in its repr."""

    scrubber: Scrubber
    marker: bytes
    pattern: re.Pattern[bytes]

    def __repr__(self) -> str:
        return f"CompiledValues({self.scrubber!r})"

    @classmethod
    def of(cls, values: Mapping[str, bytes]) -> CompiledValues:
        """Compile `values` (name -> value); slow for large sets (hundreds of ms for
        thousands of values), so callers compile before taking any lock."""
        nonce = secrets.token_hex(12)
        marker = f"\x00{nonce}:".encode()
        scrubber = Scrubber({marker + name.encode() + b"\x00": v for name, v in values.items()})
        name = f"({NAME_PATTERN})".encode()
        return cls(scrubber, marker, re.compile(re.escape(marker) + name + b"\x00"))


class AnswerScrubber:
    """The broker's current values, compiled for scrubbing answers."""

    def __init__(self, may_read: Callable[[Principal, str], bool]) -> None:
        self._may_read = may_read
        self._compiled = CompiledValues.of({})

    def __repr__(self) -> str:
        return f"AnswerScrubber({self._compiled.scrubber!r})"

    def install(self, compiled: CompiledValues) -> None:
        """Serve a newly compiled set from now on (the broker swaps it together with the
        store, on every push and clear)."""
        self._compiled = compiled

    def scrub(self, texts: list[str], caller: Principal) -> list[str]:
        """`texts` with every value replaced by the caller's placeholder; the very same
        list (no copy) when none of them holds a value, which is the common case."""
        compiled = self._compiled
        if compiled.scrubber.empty or not texts:
            return texts
        # One search over the whole answer first: most answers hold no value at all.
        joined = _SEPARATOR.join(text.encode() for text in texts)
        if compiled.marker not in compiled.scrubber.scrub(joined):
            return texts
        return [self._scrub_one(compiled, text, caller) for text in texts]

    def _scrub_one(self, compiled: CompiledValues, text: str, caller: Principal) -> str:
        scrubbed = compiled.scrubber.scrub(text.encode())
        if compiled.marker not in scrubbed:
            return text

        def placeholder(match: re.Match[bytes]) -> bytes:
            name = match.group(1).decode()
            shown = f"${{secret:{name}}}" if self._may_read(caller, name) else REDACTED
            return shown.encode()

        return compiled.pattern.sub(placeholder, scrubbed).decode("utf-8", errors="replace")
