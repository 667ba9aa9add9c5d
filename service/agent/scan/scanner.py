"""A scan: texts in, findings out. A finding names the file, the line, the rule and, for a
known value, the secret's label; it never holds the text that matched."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.agent.scan.ignore import SecretsIgnore
from service.agent.scan.patterns import HIGH, scan_line
from service.agent.scan.sources import Text
from service.agent.scan.values import ValueFinder

KNOWN_VALUE = "known-value"


@dataclass(frozen=True)
class Finding:
    """One exposed secret: where, by which rule, and (known values) which secret."""

    path: str
    line: int
    rule: str
    severity: str
    secret: str | None = None  # the name or handle of a known value
    commit: str = ""

    def __str__(self) -> str:
        where = f"{self.commit}:{self.path}" if self.commit else self.path
        what = f"{self.rule} ({self.severity})"
        return f"{where}:{self.line}: {what}" + (f" {self.secret}" if self.secret else "")


def scan_text(text: Text, *, values: ValueFinder | None, ignore: SecretsIgnore) -> list[Finding]:
    """Findings of one text (empty when `.secretsignore` leaves its path out)."""
    if ignore.skips_file(text.path):
        return []
    found: list[Finding] = []
    decoded = text.data.decode("utf-8", "replace")
    for number, line in enumerate(decoded.splitlines(), start=1):
        for hit in scan_line(line):
            if not ignore.skips_rule(hit.rule.id, text.path):
                found.append(
                    Finding(
                        text.path,
                        text.shown_line(number),
                        hit.rule.id,
                        hit.rule.severity,
                        commit=text.where,
                    )
                )
    if values is not None and not ignore.skips_rule(KNOWN_VALUE, text.path):
        for value_hit in values.find(text.data):
            found.append(
                Finding(
                    text.path,
                    text.shown_line(value_hit.line),
                    KNOWN_VALUE,
                    HIGH,
                    secret=value_hit.label,
                    commit=text.where,
                )
            )
    # A known value that also has a known shape is reported once, as the known value.
    known = {(f.line, f.commit) for f in found if f.rule == KNOWN_VALUE}
    found = [f for f in found if f.rule == KNOWN_VALUE or (f.line, f.commit) not in known]
    return sorted(set(found), key=lambda f: (f.commit, f.line, f.rule))


def scan(
    texts: Iterable[Text], *, values: ValueFinder | None, ignore: SecretsIgnore
) -> list[Finding]:
    """Findings of every text, in the order the texts come."""
    out: list[Finding] = []
    for text in texts:
        out.extend(scan_text(text, values=values, ignore=ignore))
    return out
