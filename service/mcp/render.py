"""How each tool's answer reads: compact text for the model first, and the same facts as
structured content for clients that read JSON. Nothing here sees a secret value: every
answer rendered was scrubbed (scry, detail, run) or never held one (names, handles)."""

from __future__ import annotations

import json
import re
from typing import Any

import mcp_types as types

from service.knowledge.chunk_models import ChunkDetail, ChunkView
from service.knowledge.scry_models import ScryResponse, ScryResult
from service.mcp.backend import RunOutcome
from service.secrets.handle_models import HandleInfo

SNIPPET_LINES = 3
SNIPPET_LINE_CHARS = 160
_WORD = re.compile(r"[A-Za-z0-9_]{2,}")


def result(text: str, structured: dict[str, Any] | None = None) -> types.CallToolResult:
    """A successful tool answer."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured
    )


def error(message: str) -> types.CallToolResult:
    """A failed tool call, told to the model so it can correct itself."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


def scry_answer(answer: ScryResponse, query: str) -> types.CallToolResult:
    """Compact results: where, how good, what it defines, a few lines, and the id."""
    if not answer.results:
        return result(
            f"No results ({answer.mode}). Try other words, an identifier, or mode=semantic.",
            {"mode": answer.mode, "count": 0, "results": []},
        )
    words = {word.lower() for word in _WORD.findall(query)}
    lines = [f"{answer.count} results ({answer.mode}), best first:"]
    items = []
    for rank, hit in enumerate(answer.results, 1):
        snippet = snippet_of(hit.content, words)
        symbol = hit.symbols[0] if hit.symbols else None
        head = f"[{rank}] {_location(hit)}  score {hit.score:.3f}"
        if symbol:
            head += f"  defines {symbol}"
        lines.append(f"{head}  id {hit.id}")
        lines.extend(f"    {line}" for line in snippet.splitlines())
        items.append(
            {
                "id": hit.id,
                "location": _location(hit),
                "repo": hit.repo,
                "kind": hit.kind,
                "score": hit.score,
                "symbol": symbol,
                "snippet": snippet,
            }
        )
    lines.append("Read one whole: scry_detail with its id.")
    return result("\n".join(lines), {"mode": answer.mode, "count": answer.count, "results": items})


def snippet_of(content: str, words: set[str]) -> str:
    """A few lines of `content`: from the first line naming a word of the query, else from
    its first non-blank line; each line cut short."""
    lines = [line.strip() for line in content.splitlines()]
    lines = [line for line in lines if line]
    start = 0
    for index, line in enumerate(lines):
        lowered = line.lower()
        if any(word in lowered for word in words):
            start = index
            break
    picked = lines[start : start + SNIPPET_LINES]
    return "\n".join(_cut(line) for line in picked)


def detail_answer(detail: ChunkDetail) -> types.CallToolResult:
    """The chunk whole, its neighbours around it in file order."""
    parts = [_chunk_text(view, "before") for view in detail.before]
    parts.append(_chunk_text(detail.chunk, "chunk"))
    parts += [_chunk_text(view, "after") for view in detail.after]
    return result("\n\n".join(parts), detail.model_dump(mode="json"))


def status_answer(status: dict[str, Any]) -> types.CallToolResult:
    chunks = status.get("chunks")
    state = status.get("state")
    head = f"Index: {chunks} chunks searchable; last run: {state}."
    return result(f"{head}\n{json.dumps(status, indent=1)}", status)


def names_answer(names: list[str]) -> types.CallToolResult:
    if not names:
        text = "No secrets are available to you."
    else:
        text = f"You may use {len(names)} secrets (names only):\n" + "\n".join(names)
    return result(text, {"names": names})


def handle_answer(info: HandleInfo) -> types.CallToolResult:
    uses = "unlimited uses" if info.uses_left is None else f"{info.uses_left} uses"
    text = (
        f"{info.handle} stands for {info.name} until {info.expires_at} ({uses}). "
        "Pass the handle, never a value."
    )
    return result(text, info.model_dump(mode="json"))


def run_answer(outcome: RunOutcome) -> types.CallToolResult:
    stdout = outcome.stdout.decode("utf-8", errors="replace")
    stderr = outcome.stderr.decode("utf-8", errors="replace")
    if outcome.timed_out:
        head = "The command was stopped at its timeout."
    else:
        head = f"Exit code {outcome.exit_code}."
    lines = [head]
    lines += [
        f"warning: {name} is too short to be scrubbed from output" for name in outcome.not_scrubbed
    ]
    for label, text, dropped in (
        ("stdout", stdout, outcome.stdout_dropped),
        ("stderr", stderr, outcome.stderr_dropped),
    ):
        note = f" ({dropped} more bytes dropped at the output cap)" if dropped else ""
        lines.append(f"--- {label}{note} ---")
        lines.append(text.rstrip("\n"))
    structured = {
        "exit_code": outcome.exit_code,
        "timed_out": outcome.timed_out,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_dropped_bytes": outcome.stdout_dropped,
        "stderr_dropped_bytes": outcome.stderr_dropped,
        "secrets_shown_as": outcome.shown_as,
        "secrets_not_scrubbed": outcome.not_scrubbed,
    }
    # A failed command is an answer, not a failed call: the model reads its output.
    return result("\n".join(lines), structured)


def _location(hit: ScryResult | ChunkView) -> str:
    return f"{hit.path}:{hit.start_line}-{hit.end_line}"


def _chunk_text(view: ChunkView, role: str) -> str:
    head = f"--- {role}: {_location(view)} ({view.kind}"
    if view.symbols:
        head += f", defines {', '.join(view.symbols)}"
    return f"{head}) id {view.id} ---\n{view.content}"


def _cut(line: str) -> str:
    return line if len(line) <= SNIPPET_LINE_CHARS else line[: SNIPPET_LINE_CHARS - 1] + "…"
