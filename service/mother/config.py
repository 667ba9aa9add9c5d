"""A remote node to federate scry with (`[[mothers]]` in the TOML settings file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class MotherNode(BaseModel):
    """One remote node: its URL and the files that authenticate us to it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(description="https://host:port or unix:///path/to/serve.sock")
    token_file: Path | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout_ms: int = Field(1500, ge=1)
