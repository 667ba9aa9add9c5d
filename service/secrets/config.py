"""Settings of the secrets domain (nested under `secrets` in Settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class SecretsSettings(BaseModel):
    """Consumer policy, session cache and audit log settings."""

    consumers_file: Path | None = Field(None, description="Principal -> scopes/allowlist TOML.")
    cache_max_ttl_secs: int = Field(3600, ge=1, description="Session cache TTL cap.")
    audit_file: Path | None = Field(None, description="Audit JSON lines (data_dir/audit.jsonl).")
    audit_buffer_events: int = Field(10_000, ge=1, description="Memory buffer when disk fails.")
