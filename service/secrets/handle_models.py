"""A handle as its owner sees it, and the request that mints one: what the handle routes
and the MCP `secret_handle` tool exchange. Pydantic models only (no broker), so a client
reads them without loading the service."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MintRequest(BaseModel):
    """Which secret the handle stands for and how long it lives."""

    name: str = Field(description="Secret name the caller may read.", examples=["GITHUB_TOKEN"])
    ttl_secs: int | None = Field(
        None, ge=1, description="Lifetime (default secrets.handle_default_ttl_secs, capped)."
    )
    uses: int | None = Field(None, ge=1, description="Resolutions allowed; unlimited if unset.")


class HandleInfo(BaseModel):
    """A handle as its owner sees it (never a value)."""

    handle: str = Field(examples=["<secret:3f9a0c1d2e4b5a6978877665544332211>"])
    name: str
    expires_at: str = Field(description="UTC, ISO 8601.")
    uses_left: int | None = Field(description="Remaining resolutions; null when unlimited.")
