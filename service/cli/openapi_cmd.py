"""`patina openapi`: print the public API's OpenAPI document (what openapi.json holds)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from service.resources import Resources
from service.settings import Settings


def openapi_document() -> dict[str, object]:
    """Build the document from a throwaway app; no sockets, no domain services."""
    from service.app import create_app  # the web stack, only when asked

    resources = Resources(Settings(home=Path("/nonexistent")))
    try:
        return create_app(resources).openapi()
    finally:
        asyncio.run(resources.close())


def register(app: typer.Typer) -> None:
    @app.command("openapi")
    def openapi() -> None:
        """Print the OpenAPI document of the public API."""
        typer.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))
