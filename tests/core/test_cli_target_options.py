"""`with_target_options`: six client-target options in, one TargetOptions out."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from service.cli.common import ConfigOption, TargetOptions, with_target_options
from service.client import Target
from service.settings import load_settings

TARGET_FLAGS = ["--socket", "--url", "--token", "--ca", "--cert", "--key"]


def _app(seen: list[TargetOptions]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @with_target_options
    def probe(name: str, config: ConfigOption = None, *, target: TargetOptions) -> None:
        """A command that only records what it was given."""
        seen.append(target)

    return app


def test_decorated_command_gets_one_target_options() -> None:
    seen: list[TargetOptions] = []
    args = ["x", "--url", "https://h:1", "--token", "t", "--ca", "ca.pem", "--key", "k.pem"]
    result = CliRunner().invoke(_app(seen), args)
    assert result.exit_code == 0, result.output
    assert seen == [
        TargetOptions(url="https://h:1", token="t", ca=Path("ca.pem"), key=Path("k.pem"))
    ]
    result = CliRunner().invoke(_app(seen), ["y"])
    assert result.exit_code == 0, result.output
    assert seen[1] == TargetOptions()


def test_the_six_options_follow_the_commands_own_in_help() -> None:
    result = CliRunner().invoke(_app([]), ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    positions = [result.output.index(flag) for flag in ["--config", *TARGET_FLAGS]]
    assert positions == sorted(positions)
    assert "Unix socket of the service." in result.output


def test_resolve_uses_the_options_and_falls_back_to_the_local_socket(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert TargetOptions().resolve(settings) == Target(socket=settings.resolved_socket_path)
    assert TargetOptions(socket=tmp_path / "s").resolve(settings) == Target(socket=tmp_path / "s")
    remote = TargetOptions(socket=tmp_path / "s", url="https://h:1", token="t", cert=Path("c"))
    assert remote.resolve(settings) == Target(url="https://h:1", token="t", cert=Path("c"))
