"""Split a document into chunks a search result can point at (with 1-based line ranges).

* Code: definition-aware chunks from a real parser (tree-sitter) for the languages in
  `languages.py` (see `code_chunker.py`); other code by definition keywords at column 0.
* Markdown: one chunk per heading section (headings inside code fences do not count).
* Text and configuration: paragraphs, merged up to the size limit.

Each chunk records the names it defines (`symbols`) and its `role`: `definition`,
`exports` (re-exports), `imports`, `code`, `test`, `example`, `docs`, `config` or
`text` (conventions.py decides
tests, examples, docs and config from the path; the parser decides the rest). Anything
larger than the size limit is cut into overlapping line windows, so no chunk runs far past
what a model reads and a match always lands near its lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from service.knowledge.code_chunker import CodePiece, parse_units
from service.knowledge.conventions import file_role, is_config_path
from service.knowledge.languages import language_of

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


# Captures the defined name after a definition keyword (the fallback's symbols).
_DEFINED_NAME = re.compile(
    r"\b(?:def|class|fn|func|function|struct|enum|trait|interface|type|module|mod|"
    r"macro_rules!|const|let)\s+(?:\([^)]*\)\s*)?([A-Za-z_$][\w$]*)"
)
ROLES = (
    "definition", "exports", "imports", "code", "test", "example", "docs", "config", "text",
)  # fmt: skip


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its text and where it sits (lines are 1-based, inclusive),
    the names it defines and what it is (see ROLES; `commit` for git history)."""

    kind: str
    event_type: str
    start_line: int
    end_line: int
    text: str
    role: str = "text"
    symbols: tuple[str, ...] = ()


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
    # "\n" only, as the parser counts lines (splitlines() also breaks at \f, \x1c, ...).
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    by_path = file_role(path)
    pieces: list[CodePiece]
    if kind == "markdown":
        spans = _markdown_sections(lines)
        pieces = [CodePiece(s, e, (), "docs") for s, e in spans]
        event_type = "doc.section"
    elif kind == "code" and not is_config_path(path):
        pieces = _code_pieces(path, text, lines, limits)
        event_type = "code.definition"
    else:
        role = "config" if kind == "code" else "text"
        pieces = [CodePiece(s, e, (), role) for s, e in _paragraphs(lines, limits.max_chars)]
        event_type = "text.paragraph"
    chunks: list[Chunk] = []
    for piece in pieces:
        # Conventions of the path (a test file, an example) outrank what the code holds.
        role = by_path if by_path in ("test", "example", "docs", "config") else piece.role
        for n, (s, e) in enumerate(fit_spans(lines, piece.start, piece.end, limits)):
            s, e = _trim(lines, s, e)
            if e <= s:
                continue
            # Only the first window holds the definition's name.
            symbols = piece.symbols if n == 0 else ()
            window_role = role if n == 0 or role != "definition" else "code"
            body = "\n".join(lines[s:e])
            chunks.append(Chunk(kind, event_type, s + 1, e, body, window_role, symbols))
    return chunks


def _code_pieces(path: str, text: str, lines: list[str], limits: ChunkLimits) -> list[CodePiece]:
    language = language_of(path)
    if language is not None:
        pieces = parse_units(text, language, limits.max_chars, path=path)
        if pieces is not None:
            return pieces
    out = []
    for s, e in _regex_definitions(lines):
        names = tuple(dict.fromkeys(_DEFINED_NAME.findall("\n".join(lines[s : min(e, s + 3)]))))
        out.append(CodePiece(s, e, names, "definition" if names else "code"))
    return out


def _trim(lines: list[str], start: int, end: int) -> tuple[int, int]:
    """Drop blank lines at both ends of [start, end)."""
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return start, end


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
