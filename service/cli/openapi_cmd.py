"""`patina openapi`: print the public API's OpenAPI document (what openapi.json holds)."""

from __future__ import annotations

import json
from typing import Any

import typer


def openapi_document() -> dict[str, Any]:
    """The public API's document, built from its routes (no sockets, no domain services)."""
    from service.app import openapi_document as document  # the web stack, only when asked

    return document()


def register(app: typer.Typer) -> None:
    @app.command("openapi")
    def openapi() -> None:
        """Print the OpenAPI document of the public API."""
        typer.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))
