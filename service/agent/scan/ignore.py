"""`.secretsignore`: what a scan leaves out, in git's ignore syntax.

* a path pattern (`tests/fixtures/`, `*.pem`, `!keep.pem`) leaves matching files out;
* `rule:ID` turns a rule off everywhere (`rule:generic-secret`); `rule:ID PATTERN` only
  for files matching PATTERN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pathspec

FILE_NAME = ".secretsignore"


Spec = pathspec.GitIgnoreSpec


def _spec(lines: list[str]) -> Spec:
    return pathspec.GitIgnoreSpec.from_lines(lines)


@dataclass
class SecretsIgnore:
    """Parsed `.secretsignore` (empty: nothing is ignored)."""

    paths: Spec = field(default_factory=lambda: _spec([]))
    rules_off: dict[str, Spec | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SecretsIgnore:
        path_lines = []
        rules: dict[str, list[str] | None] = {}
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("rule:"):
                rule, _, pattern = line[5:].partition(" ")
                pattern = pattern.strip()
                if not pattern:
                    rules[rule] = None
                elif (scoped := rules.setdefault(rule, [])) is not None:
                    scoped.append(pattern)
                continue
            path_lines.append(line)
        return cls(
            _spec(path_lines),
            {rule: None if ps is None else _spec(ps) for rule, ps in rules.items()},
        )

    @classmethod
    def load(cls, root: Path) -> SecretsIgnore:
        try:
            return cls.parse((root / FILE_NAME).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()

    def skips_file(self, path: str) -> bool:
        return self.paths.match_file(path)

    def skips_rule(self, rule: str, path: str) -> bool:
        if rule not in self.rules_off:
            return False
        scope = self.rules_off[rule]
        return scope is None or scope.match_file(path)
