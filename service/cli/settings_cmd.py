"""`patina settings`: every setting with its environment variable, default and meaning.

The README's settings table is this command's output (a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Iterator

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from service.settings import Settings

NESTED = ("knowledge", "secrets", "mcp")
DERIVED_DEFAULTS = {
    "home": "`~/.patina`",
    "allowed_uids": "own uid",
    "admin_allowed_uids": "own uid",
}


def _default(name: str, field: object) -> str:
    if name in DERIVED_DEFAULTS:
        return DERIVED_DEFAULTS[name]
    default = getattr(field, "default", None)
    if default is PydanticUndefined or default is None:
        return ""
    if name.endswith("_mode") and isinstance(default, int):
        return f"`{default:04o}`"
    if isinstance(default, list) and not default:
        return ""
    return f"`{default}`"


def _rows(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        if not prefix and (name in NESTED or name == "mothers"):
            continue
        env = "PATINA_" + (prefix.upper().replace(".", "__") + name.upper())
        description = (field.description or "").replace("|", "\\|")
        yield f"| `{prefix}{name}` | `{env}` | {_default(name, field)} | {description} |"


def settings_table() -> str:
    lines = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    lines += _rows(Settings)
    for nested in NESTED:
        model = Settings.model_fields[nested].annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        lines += _rows(model, f"{nested}.")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("settings")
    def settings() -> None:
        """Print every setting as a Markdown table (environment variable, default, meaning)."""
        typer.echo(settings_table())
