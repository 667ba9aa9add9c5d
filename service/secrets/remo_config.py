"""Settings of the remo-broker wire protocol (nested under `remo` in Settings).

```toml
[remo]
enabled = true                     # the admin socket also speaks remo's NDJSON

[[remo.projects]]
name = "myrepo"                    # the principal `project:myrepo`
path = "/run/patina/myrepo.sock"   # default: run_dir/<name>.sock
mode = "0660"
group = "devs"
allowed_uids = [1000]
allowlist = ["GITHUB_TOKEN", "NPM_TOKEN"]
cache_ttl_secs = 900
```

A project socket is the identity: every devcontainer may run as uid 1000, so the socket a
connection arrived on, not its uid, says which project calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from service.secret_names import NAME_PATTERN, valid_name

# Names the run dir's own sockets use; a project may not take them.
RESERVED_NAMES = frozenset({"serve", "admin"})


class ProjectSocket(BaseModel):
    """One project's socket: where it is, who may connect, what it may read."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Project name (remo's manifest rule); the principal is project:NAME.",
    )
    path: Path | None = Field(None, description="Socket path (run_dir/NAME.sock).")
    mode: int = Field(0o600, ge=0, le=0o777, description="Socket file mode (0660 with a group).")
    group: str | None = Field(None, description="Group to own the socket (name or gid).")
    allowed_uids: list[int] = Field(
        default_factory=list, description="Peer uids allowed (own uid); others: peer_unexpected."
    )
    allowlist: list[str] = Field(
        default_factory=list, description=f"Secret names this project may get (^{NAME_PATTERN}$)."
    )
    cache_ttl_secs: int = Field(
        900, ge=1, le=86_400, description="ttl_seconds answered with a value (remo's cache TTL)."
    )
    cache_max_entries: int = Field(
        32, ge=1, le=1024, description="remo's cache bound; accepted, nothing is cached here."
    )
    max_gets_per_minute: int = Field(
        600, ge=1, le=1_000_000, description="get requests per minute; beyond: rate_limited."
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _parse_octal(cls, value: Any) -> Any:
        return int(value, 8) if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is the name of one of the service's own sockets")
        return value

    @field_validator("allowlist")
    @classmethod
    def _check_allowlist(cls, names: list[str]) -> list[str]:
        for index, name in enumerate(names):
            if not valid_name(name):
                raise ValueError(f"allowlist #{index + 1}: names must match ^{NAME_PATTERN}$")
        if len(set(names)) != len(names):
            raise ValueError("allowlist holds a name twice")
        return names

    def socket_path(self, run_dir: Path) -> Path:
        return self.path or run_dir / f"{self.name}.sock"


class RemoSettings(BaseModel):
    """remo-broker v2 compatibility: NDJSON on the admin socket, per-project sockets."""

    enabled: bool = Field(
        False, description="The admin socket also speaks remo's NDJSON (push-creds, status)."
    )
    projects: list[ProjectSocket] = Field(
        default_factory=list, description="Per-project sockets (remo NDJSON and HTTP)."
    )

    @field_validator("projects")
    @classmethod
    def _unique(cls, projects: list[ProjectSocket]) -> list[ProjectSocket]:
        names = [project.name for project in projects]
        if len(set(names)) != len(names):
            raise ValueError("two projects have the same name")
        paths = [project.path for project in projects if project.path is not None]
        if len(set(paths)) != len(paths):
            raise ValueError("two projects have the same socket path")
        return projects
