"""`patina mcp config --agent ...`: each agent's real format, printed or merged into its
file without dropping the user's other entries, atomically, with a backup."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from service.mcp.agent_config import AGENTS
from tests.support.process import PATINA, run_patina

SERVER = {"command": PATINA, "args": ["mcp"]}


@pytest.mark.parametrize(
    ("agent", "key", "extra"),
    [
        ("claude", "mcpServers", {}),
        ("cursor", "mcpServers", {}),
        ("gemini", "mcpServers", {}),
        ("vscode", "servers", {"type": "stdio"}),
    ],
)
def test_json_agents_print_their_format(agent: str, key: str, extra: dict[str, str]) -> None:
    result = run_patina("mcp", "config", "--agent", agent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {key: {"patina": {**extra, **SERVER}}}


def test_codex_prints_a_toml_table() -> None:
    result = run_patina("mcp", "config", "--agent", "codex")
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(result.stdout.decode()) == {"mcp_servers": {"patina": SERVER}}


def test_the_default_files_are_where_each_agent_reads_them(tmp_path: Path) -> None:
    project, home = tmp_path / "repo", tmp_path / "home"
    paths = {name: spec.default_path(project, home) for name, spec in AGENTS.items()}
    assert paths == {
        "claude": project / ".mcp.json",
        "codex": home / ".codex" / "config.toml",
        "cursor": project / ".cursor" / "mcp.json",
        "gemini": project / ".gemini" / "settings.json",
        "vscode": project / ".vscode" / "mcp.json",
    }


def test_a_config_file_setting_is_passed_on_to_the_server(tmp_path: Path) -> None:
    config = tmp_path / "patina.toml"
    config.write_text("")
    result = run_patina("mcp", "config", "--agent", "claude", "--config", str(config))
    entry = json.loads(result.stdout)["mcpServers"]["patina"]
    assert entry["args"] == ["mcp", "--config", str(config)]


def test_write_merges_keeps_other_entries_and_a_backup(tmp_path: Path) -> None:
    target = tmp_path / ".gemini" / "settings.json"
    target.parent.mkdir()
    original = {
        "theme": "dark",
        "mcpServers": {"other": {"command": "other-server"}, "patina": {"command": "old"}},
    }
    target.write_text(json.dumps(original))
    target.chmod(0o640)
    result = run_patina("mcp", "config", "--agent", "gemini", "--write", "--path", str(target))
    assert result.returncode == 0, result.stderr
    merged = json.loads(target.read_text())
    assert merged["theme"] == "dark"
    assert merged["mcpServers"]["other"] == {"command": "other-server"}
    assert merged["mcpServers"]["patina"] == SERVER
    backup = target.with_name("settings.json.bak")
    assert json.loads(backup.read_text()) == original
    assert target.stat().st_mode & 0o777 == 0o640  # the file keeps its permissions
    assert str(backup).encode() in result.stderr
    # No temporary file is left beside it.
    assert sorted(p.name for p in target.parent.iterdir()) == ["settings.json", "settings.json.bak"]


def test_write_creates_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / ".vscode" / "mcp.json"
    result = run_patina("mcp", "config", "--agent", "vscode", "--write", "--path", str(target))
    assert result.returncode == 0, result.stderr
    assert json.loads(target.read_text()) == {"servers": {"patina": {"type": "stdio", **SERVER}}}
    assert not target.with_name("mcp.json.bak").exists()


def test_codex_merge_keeps_comments_and_other_tables(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text(
        '# my settings\nmodel = "o4"\n\n[mcp_servers.patina]\ncommand = "old"\n'
        'args = ["x"]\n\n[mcp_servers.other]\ncommand = "other"  # keep me\n'
    )
    result = run_patina("mcp", "config", "--agent", "codex", "--write", "--path", str(target))
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert "# my settings" in text
    assert 'command = "other"  # keep me' in text
    parsed = tomllib.loads(text)
    assert parsed["model"] == "o4"
    assert parsed["mcp_servers"] == {"patina": SERVER, "other": {"command": "other"}}
    again = run_patina("mcp", "config", "--agent", "codex", "--write", "--path", str(target))
    assert again.returncode == 0
    assert target.read_text() == text  # merging twice changes nothing


@pytest.mark.parametrize(
    ("agent", "name", "content", "message"),
    [
        ("vscode", "mcp.json", '{\n  // a comment\n  "servers": {}\n}', "not plain JSON"),
        ("claude", ".mcp.json", "[1, 2]", "does not hold a JSON object"),
        ("cursor", "mcp.json", '{"mcpServers": []}', "`mcpServers` is not an object"),
        ("codex", "config.toml", "model = ", "not valid TOML"),
        ("codex", "config.toml", 'mcp_servers = { patina = { command = "x" } }\n', "another way"),
    ],
)
def test_a_file_that_cannot_be_merged_is_left_untouched(
    tmp_path: Path, agent: str, name: str, content: str, message: str
) -> None:
    target = tmp_path / name
    target.write_text(content)
    result = run_patina("mcp", "config", "--agent", agent, "--write", "--path", str(target))
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert target.read_text() == content
    assert os.listdir(tmp_path) == [name]


def test_an_unknown_agent_is_refused() -> None:
    result = run_patina("mcp", "config", "--agent", "emacs")
    assert result.returncode == 2
    assert "choose one of: claude, codex, cursor, gemini, vscode" in result.stderr.decode()
