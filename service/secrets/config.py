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
    policy_poll_secs: float = Field(1.0, gt=0, description="Consumers-file change polling.")
    cache_purge_secs: float = Field(5.0, gt=0, description="Session cache purge interval.")
    max_push_bytes: int = Field(
        1024 * 1024, ge=1024, description="Body cap of the admin socket (PUT /admin/secrets)."
    )
    handle_default_ttl_secs: int = Field(600, ge=1, description="Opaque handle TTL default.")
    handle_max_ttl_secs: int = Field(86_400, ge=1, description="Opaque handle TTL cap.")
    handle_max_per_caller: int = Field(1000, ge=1, description="Live handles per caller.")
    disable_core_dumps: bool = Field(
        True, description="RLIMIT_CORE 0 and PR_SET_DUMPABLE 0 when the broker opens."
    )
