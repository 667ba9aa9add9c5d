"""Finding known secret values, and their encodings, in text, with the redaction engine.

The values (what the vault and the running service hold) stay in this process's memory:
the scrubber is built with a marker per value, and a file's scrubbed text shows which
marker replaced what where. Neither a value nor a match is ever written out; a finding
carries the line and the secret's label (a name or a handle).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from service.redaction.scrubber import MIN_VALUE_LEN, Scrubber


@dataclass(frozen=True)
class ValueHit:
    """A known value (in one of its forms) starts on `line` (1-based)."""

    line: int
    label: str


class ValueFinder:
    """A compiled set of values to look for, each with the label a finding shows."""

    def __init__(self, labelled: Iterable[tuple[str, bytes]]) -> None:
        given = list(labelled)
        items = [(label, value) for label, value in given if len(value) >= MIN_VALUE_LEN]
        # Too short to tell from ordinary text: reported, not searched.
        self.too_short = sorted({label for label, value in given if len(value) < MIN_VALUE_LEN})
        self._labels = [label for label, _ in items]
        # A nonce no scanned file can hold by chance marks where a value was.
        nonce = secrets.token_hex(8).encode()
        self._marker = re.compile(b"\\x00" + nonce + b":([0-9]+)\\x00")
        self._scrubber = Scrubber(
            [(b"\x00" + nonce + b":%d\x00" % i, value) for i, (_, value) in enumerate(items)]
        )

    def __repr__(self) -> str:
        return f"ValueFinder(values={len(self._labels)})"

    @property
    def empty(self) -> bool:
        return not self._labels

    def find(self, data: bytes) -> list[ValueHit]:
        """Where a value or one of its encodings starts in `data`, by line."""
        if self.empty:
            return []
        scrubbed = self._scrubber.scrub(data)
        parts = self._marker.split(scrubbed)
        if len(parts) == 1:
            return []
        hits = []
        # parts: text, index, text, index, ..., text. The texts are `data` verbatim between
        # matches, so each match starts where the text before it ends in `data`.
        position = 0
        for k in range(1, len(parts), 2):
            position += len(parts[k - 1])
            hits.append(ValueHit(data.count(b"\n", 0, position) + 1, self._labels[int(parts[k])]))
            following = parts[k + 1]
            if k + 2 >= len(parts):
                break
            # The match ends where the verbatim text after it begins (earliest occurrence:
            # exact unless that text also occurs inside the match).
            found = data.find(following, position + 1) if following else -1
            position = found if found >= 0 else position + 1
        return hits
