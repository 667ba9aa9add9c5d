"""SECURITY.md is a checklist: every rule names the tests that prove it. This test fails
when a rule names no test or a named test does not exist (found by parsing the test files,
so a renamed or deleted test breaks the checklist at once)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECURITY = REPO / "SECURITY.md"
NODE_ID = re.compile(r"`(tests/[\w/]+\.py::[\w:]+)`")
RULE = re.compile(r"^- \*\*(?P<rule>[^*]+)\*\*")


def rules(text: str) -> dict[str, list[str]]:
    """Rule title -> node ids cited in its list item (up to the next rule or heading)."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = RULE.match(line)
        if match:
            current = match["rule"].strip()
            found[current] = []
        elif line.startswith("#"):
            current = None
        if current is not None:
            found[current] += NODE_ID.findall(line)
    return found


def defined_tests(path: Path) -> set[str]:
    """`name` of module-level tests and `Class::name` of tests in classes."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test_"
        ):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return names


def test_every_rule_names_at_least_one_test() -> None:
    checklist = rules(SECURITY.read_text())
    assert len(checklist) >= 30, "the checklist lost its rules"
    unproven = [rule for rule, ids in checklist.items() if not ids]
    assert not unproven, f"rules without a test: {unproven}"


def test_every_named_test_exists() -> None:
    missing = []
    cache: dict[Path, set[str]] = {}
    for ids in rules(SECURITY.read_text()).values():
        for node_id in ids:
            file, _, name = node_id.partition("::")
            path = REPO / file
            if not path.is_file():
                missing.append(node_id)
                continue
            if path not in cache:
                cache[path] = defined_tests(path)
            if name not in cache[path]:
                missing.append(node_id)
    assert not missing, f"SECURITY.md names tests that do not exist: {missing}"


def test_the_checker_catches_a_missing_test(tmp_path: Path) -> None:
    # The parser itself: a rule with a bogus id is reported, one without ids is unproven.
    text = (
        "# Rules\n- **A rule**: proven by `tests/proving/test_checklist.py::test_nope`.\n"
        "- **Another**: no proof.\n"
    )
    parsed = rules(text)
    assert parsed == {"A rule": ["tests/proving/test_checklist.py::test_nope"], "Another": []}
    assert "test_nope" not in defined_tests(Path(__file__))
    assert "test_every_named_test_exists" in defined_tests(Path(__file__))
