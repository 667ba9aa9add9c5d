"""`with_target_options`: the client-target options in, one TargetOptions out; and where a
bearer token may go."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from service.cli.common import ConfigOption, TargetOptions, with_target_options
from service.client import Target
from service.settings import load_settings

TARGET_FLAGS = ["--socket", "--url", "--token-file", "--ca", "--cert", "--key", "--insecure"]


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
    args = ["x", "--url", "https://h:1", "--token-file", "t", "--ca", "ca.pem", "--key", "k"]
    result = CliRunner().invoke(_app(seen), args)
    assert result.exit_code == 0, result.output
    assert seen == [
        TargetOptions(url="https://h:1", token_file=Path("t"), ca=Path("ca.pem"), key=Path("k"))
    ]
    result = CliRunner().invoke(_app(seen), ["y"])
    assert result.exit_code == 0, result.output
    assert seen[1] == TargetOptions()


def test_the_target_options_follow_the_commands_own_in_help() -> None:
    result = CliRunner().invoke(_app([]), ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    positions = [result.output.index(flag) for flag in ["--config", *TARGET_FLAGS]]
    assert positions == sorted(positions)
    assert "Unix socket of the service." in result.output


def test_resolve_uses_the_options_and_falls_back_to_the_local_socket(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert TargetOptions().resolve(settings) == Target(socket=settings.resolved_socket_path)
    assert TargetOptions(socket=tmp_path / "s").resolve(settings) == Target(socket=tmp_path / "s")
    token_file = tmp_path / "token"
    token_file.write_text("pt_tripwire-cli-token-4d1c\n")
    remote = TargetOptions(
        socket=tmp_path / "s", url="https://h:1", token_file=token_file, cert=Path("c")
    )
    assert remote.resolve(settings) == Target(
        url="https://h:1", token="pt_tripwire-cli-token-4d1c", cert=Path("c")
    )


def test_a_token_is_never_taken_from_argv() -> None:
    result = CliRunner().invoke(_app([]), ["x", "--url", "https://h:1", "--token", "pt_x"])
    assert result.exit_code == 2
    assert "No such option" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No such file"), ("", "must hold one token"), ("pt_a pt_b", "must hold one token")],
)
def test_a_bad_token_file_exits_2_naming_the_file_not_its_contents(
    tmp_path: Path, content: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    seen: list[TargetOptions] = []
    app = _app(seen)
    result = CliRunner().invoke(app, ["x", "--url", "https://h:1", "--token-file", str(path)])
    assert result.exit_code == 0  # the probe command does not resolve; resolving does:
    settings = load_settings(home=tmp_path / "home")
    with pytest.raises(typer.Exit) as exited:
        seen[0].resolve(settings)
    assert exited.value.exit_code == 2
    said = capsys.readouterr().err
    assert message in said
    assert str(path) in said
    assert "pt_a" not in said
