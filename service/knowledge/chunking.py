"""Split a document into chunks a search result can point at (with 1-based line ranges).

* Markdown: one chunk per heading section (headings inside code fences do not count).
* Code: one chunk per top-level definition (Python through `ast`, other languages by
  their definition keywords at column 0); files without them fall back to line windows.
* Text: paragraphs, merged up to the size limit.

Anything larger than the size limit is cut into overlapping line windows, so no chunk runs
far past what the model reads (256 tokens) and a match always lands near its lines.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdx", ".rst"})
CODE_SUFFIXES = frozenset(
    {
        ".py", ".pyi", ".rs", ".go", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".java",
        ".kt", ".kts", ".scala", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs",
        ".swift", ".rb", ".php", ".lua", ".sh", ".bash", ".zsh", ".sql", ".r", ".jl", ".ex",
        ".exs", ".erl", ".hs", ".ml", ".clj", ".dart", ".zig", ".nim", ".pl", ".proto",
        ".toml", ".yaml", ".yml", ".json", ".ini", ".cfg", ".mk", ".cmake", ".gradle",
        ".tf", ".vue", ".svelte", ".css", ".scss", ".html", ".xml",
    }
)  # fmt: skip
CODE_NAMES = frozenset({"Makefile", "Dockerfile", "Containerfile", "Justfile", "Rakefile"})

_HEADING = re.compile(r"^(#{1,6})\s+\S")
_FENCE = re.compile(r"^\s*(```|~~~)")
# A definition that starts at column 0 in the common C-family, Rust, Go, JS/TS, Ruby, shell.
_TOP_LEVEL_DEF = re.compile(
    r"^(?:export\s+)?(?:default\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?"
    r"(?:def|class|fn|func|function|impl|struct|enum|trait|interface|type|module|mod|"
    r"macro_rules!|const\s+\w+\s*=\s*(?:async\s*)?\(|let\s+\w+\s*=\s*(?:async\s*)?\()\b"
)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its text and where it sits (lines are 1-based, inclusive)."""

    kind: str
    event_type: str
    start_line: int
    end_line: int
    text: str


@dataclass(frozen=True)
class ChunkLimits:
    max_chars: int = 1500
    window_lines: int = 50
    overlap: int = 10


def kind_of(path: str) -> str:
    """`markdown`, `code` or `text`, from the file name."""
    pure = PurePosixPath(path)
    suffix = pure.suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in CODE_SUFFIXES or pure.name in CODE_NAMES:
        return "code"
    return "text"


def chunk_document(path: str, text: str, limits: ChunkLimits | None = None) -> list[Chunk]:
    """Chunk a file's text according to its kind; blank pieces are dropped."""
    limits = limits or ChunkLimits()
    kind = kind_of(path)
    lines = text.splitlines()
    spans: list[tuple[int, int]] | None
    if kind == "markdown":
        spans = _markdown_sections(lines)
        event_type = "doc.section"
    elif kind == "code":
        spans = _python_definitions(text, len(lines)) if path.endswith((".py", ".pyi")) else None
        if spans is None:
            spans = _regex_definitions(lines)
        event_type = "code.definition"
    else:
        spans = _paragraphs(lines, limits.max_chars)
        event_type = "text.paragraph"
    chunks: list[Chunk] = []
    for start, end in spans or []:
        for s, e in fit_spans(lines, start, end, limits):
            body = "\n".join(lines[s:e]).strip()
            if body:
                chunks.append(Chunk(kind, event_type, s + 1, e, body))
    return chunks


def fit_spans(lines: list[str], start: int, end: int, limits: ChunkLimits) -> list[tuple[int, int]]:
    """Keep a span whole if it is small enough, else cut it into overlapping windows."""
    if sum(len(line) + 1 for line in lines[start:end]) <= limits.max_chars:
        return [(start, end)]
    out: list[tuple[int, int]] = []
    step = max(1, limits.window_lines - limits.overlap)
    s = start
    while s < end:
        e = s
        size = 0
        # A window ends at its line budget or its character budget, whichever comes first.
        while e < end and e - s < limits.window_lines:
            size += len(lines[e]) + 1
            if size > limits.max_chars and e > s:
                break
            e += 1
        out.append((s, e))
        if e >= end:
            break
        s = max(s + 1, min(s + step, e - limits.overlap))
    return out


def _markdown_sections(lines: list[str]) -> list[tuple[int, int]]:
    starts = [0]
    in_fence = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and _HEADING.match(line) and i > 0:
            starts.append(i)
    return _spans(starts, len(lines))


def _python_definitions(text: str, n_lines: int) -> list[tuple[int, int]] | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    starts: list[int] = [0]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            starts.append(first)
            # Code after a definition starts a new span, so a definition's chunk is only it.
            if node.end_lineno is not None:
                starts.append(node.end_lineno)
    return _spans(starts, n_lines)


def _regex_definitions(lines: list[str]) -> list[tuple[int, int]]:
    starts = [0]
    for i, line in enumerate(lines):
        if i > 0 and _TOP_LEVEL_DEF.match(line):
            # Comments and attributes directly above belong to the definition.
            j = i
            while j > 0 and lines[j - 1].lstrip().startswith(("//", "#", "/*", "*", "@", "--")):
                j -= 1
            starts.append(j)
    return _spans(starts, len(lines))


def _paragraphs(lines: list[str], max_chars: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for i, line in enumerate([*lines, ""]):
        if line.strip() and start is None:
            start = i
        elif not line.strip() and start is not None:
            spans.append((start, i))
            start = None
    # Merge neighbouring short paragraphs so a chunk carries enough context to match.
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged:
            ps, _pe = merged[-1]
            if sum(len(x) + 1 for x in lines[ps:e]) <= max_chars // 2:
                merged[-1] = (ps, e)
                continue
        merged.append((s, e))
    return merged


def _spans(starts: list[int], n_lines: int) -> list[tuple[int, int]]:
    points = sorted({s for s in starts if 0 <= s < n_lines})
    if not points:  # an empty document
        return []
    return [(s, e) for s, e in zip(points, [*points[1:], n_lines], strict=True) if e > s]
