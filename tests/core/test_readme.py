"""The README documents every setting: its table is `patina settings`' output."""

from __future__ import annotations

from pathlib import Path

from service.cli.settings_cmd import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_is_current() -> None:
    text = README.read_text()
    assert settings_table() in text, "README settings table is stale: run `make docs`"


def test_readme_opens_with_the_two_commands() -> None:
    lines = [line for line in README.read_text().splitlines() if line.startswith("make ")]
    assert [line.split("#")[0].strip() for line in lines[:2]] == ["make serve", "make test"]
