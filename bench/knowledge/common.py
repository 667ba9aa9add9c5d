"""Shared helpers of the knowledge benchmarks: an offline corpus with relevance judgements."""

from __future__ import annotations

import ast
import importlib
import inspect
import statistics
import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Item:
    """One function: its source without the docstring, and the docstring's first line."""

    name: str
    code: str
    query: str


def library_functions(modules: list[str], *, limit: int) -> list[Item]:
    """Functions and methods of installed modules that have a docstring of 4+ words."""
    items: list[Item] = []
    seen_queries: set[str] = set()
    for module_name in modules:
        module = importlib.import_module(module_name)
        source = inspect.getsource(module)
        tree = ast.parse(source)
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            doc = ast.get_docstring(node)
            if not doc:
                continue
            first = doc.strip().splitlines()[0].strip()
            if len(first.split()) < 4 or first in seen_queries or node.end_lineno is None:
                continue
            body_doc = node.body[0]
            assert body_doc.end_lineno is not None
            # The function's lines without the docstring's lines.
            kept = (
                lines[node.lineno - 1 : body_doc.lineno - 1]
                + lines[body_doc.end_lineno : node.end_lineno]
            )
            code = textwrap.dedent("\n".join(kept))
            if len(code.splitlines()) < 3:
                continue
            seen_queries.add(first)
            items.append(Item(f"{module_name}.{node.name}.{node.lineno}", code, first))
            if len(items) >= limit:
                return items
    return items


def write_items(root: Path, items: list[Item]) -> dict[str, str]:
    """One file per function; returns query -> relevant path."""
    root.mkdir(parents=True, exist_ok=True)
    truth: dict[str, str] = {}
    for item in items:
        rel = item.name.replace(".", "_") + ".py"
        (root / rel).write_text(item.code + "\n")
        truth[item.query] = rel
    return truth


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def p50(values: list[float]) -> float:
    return statistics.median(values)
