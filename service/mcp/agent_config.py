"""Each agent's MCP configuration for `patina mcp`, and a merge into its file that keeps
every other entry, writes atomically and keeps the previous file as a backup.

Formats and places (project scope where the agent has one, so the server follows the repo):
* Claude Code: `.mcp.json`, `{"mcpServers": {name: {command, args}}}`;
* Cursor: `.cursor/mcp.json`, the same shape;
* Gemini CLI: `.gemini/settings.json`, `mcpServers` beside the user's other settings;
* VS Code: `.vscode/mcp.json`, `{"servers": {name: {"type": "stdio", command, args}}}`;
* Codex: `~/.codex/config.toml` (user scope only), a `[mcp_servers.NAME]` table.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.fileio import write_private

SERVER_NAME = "patina"


class ConfigError(Exception):
    """The agent's file cannot be merged safely; the message says why and what to do."""


@dataclass(frozen=True)
class AgentSpec:
    """Where an agent keeps its MCP servers and how an entry is written."""

    name: str
    relative: str  # the file, under `base`
    base: str  # "project" (the current directory) or "home"
    servers_key: str = "mcpServers"  # JSON formats only
    stdio_type: bool = False  # VS Code wants "type": "stdio"
    toml: bool = False

    def default_path(self, project: Path, home: Path) -> Path:
        return (project if self.base == "project" else home) / self.relative

    def entry(self, command: list[str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "stdio"} if self.stdio_type else {}
        entry["command"] = command[0]
        entry["args"] = command[1:]
        return entry


AGENTS: dict[str, AgentSpec] = {
    "claude": AgentSpec("claude", ".mcp.json", "project"),
    "codex": AgentSpec("codex", ".codex/config.toml", "home", toml=True),
    "cursor": AgentSpec("cursor", ".cursor/mcp.json", "project"),
    "gemini": AgentSpec("gemini", ".gemini/settings.json", "project"),
    "vscode": AgentSpec(
        "vscode", ".vscode/mcp.json", "project", servers_key="servers", stdio_type=True
    ),
}


def snippet(spec: AgentSpec, command: list[str]) -> str:
    """The configuration to paste into the agent's file."""
    if spec.toml:
        return _toml_table(spec, command)
    return json.dumps({spec.servers_key: {SERVER_NAME: spec.entry(command)}}, indent=2) + "\n"


def merge_into(spec: AgentSpec, path: Path, command: list[str]) -> Path | None:
    """Add (or replace) the patina entry in `path`, keeping everything else; the previous
    file is kept as `<name>.bak` (returned; None when there was none). The file is
    replaced atomically and keeps its permissions."""
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    merge: Callable[[str, AgentSpec, list[str]], str] = _merge_toml if spec.toml else _merge_json
    text = merge(old.decode("utf-8", errors="strict") if old else "", spec, command)
    mode = 0o600
    backup = None
    if old is not None:
        mode = path.stat().st_mode & 0o777
        backup = path.with_name(path.name + ".bak")
        write_private(backup, old, mode=mode)
    write_private(path, text.encode(), mode=mode)
    return backup


def _merge_json(old: str, spec: AgentSpec, command: list[str]) -> str:
    document: Any = {}
    if old.strip():
        try:
            document = json.loads(old)
        except json.JSONDecodeError:
            raise ConfigError(
                "the file is not plain JSON (comments?): add the entry printed by "
                "`patina mcp config` by hand"
            ) from None
    if not isinstance(document, dict):
        raise ConfigError("the file does not hold a JSON object; nothing was changed")
    servers = document.setdefault(spec.servers_key, {})
    if not isinstance(servers, dict):
        raise ConfigError(f"`{spec.servers_key}` is not an object; nothing was changed")
    servers[SERVER_NAME] = spec.entry(command)
    return json.dumps(document, indent=2) + "\n"


_HEADER = re.compile(r"^\s*\[")


def _merge_toml(old: str, spec: AgentSpec, command: list[str]) -> str:
    """The table replaced (or appended) as text, so the user's comments and layout stay."""
    try:
        tomllib.loads(old)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the file is not valid TOML ({exc}); nothing was changed") from None
    table = _toml_table(spec, command)
    header = f"[mcp_servers.{SERVER_NAME}]"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        sep = "" if not old or old.endswith("\n\n") else ("\n" if old.endswith("\n") else "\n\n")
        merged = old + sep + table
    else:
        end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
        merged = "".join(lines[:start]) + table + ("\n" if end < len(lines) else "")
        merged += "".join(lines[end:])
    try:
        parsed = tomllib.loads(merged)
    except tomllib.TOMLDecodeError:
        parsed = {}
    if parsed.get("mcp_servers", {}).get(SERVER_NAME) != _toml_entry(command):
        # A dotted key or an inline table elsewhere defines it too: not ours to rewrite.
        raise ConfigError(f"{header} is also defined another way in the file; edit it by hand")
    return merged


def _toml_entry(command: list[str]) -> dict[str, Any]:
    return {"command": command[0], "args": command[1:]}


def _toml_table(spec: AgentSpec, command: list[str]) -> str:
    args = ", ".join(json.dumps(arg) for arg in command[1:])
    return f"[mcp_servers.{SERVER_NAME}]\ncommand = {json.dumps(command[0])}\nargs = [{args}]\n"
