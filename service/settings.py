"""Settings: defaults < secret files < TOML file < environment (PATINA_*) < explicit overrides.

Every field is documented in the README's settings table; `patina serve --help` mirrors the
ones that matter on the command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from service.knowledge.config import KnowledgeSettings
from service.mcp.config import McpSettings
from service.mother.config import MotherNode
from service.secrets.config import SecretsSettings
from service.secrets.remo_config import RemoSettings

MIB = 1024 * 1024
DEFAULT_SECRETS_DIR = Path("/run/secrets")


def default_home() -> Path:
    return Path(os.environ.get("PATINA_HOME", str(Path.home() / ".patina"))).expanduser()


class HostPort(BaseModel):
    """A TCP listen address parsed from `HOST:PORT` (IPv6 as `[::1]:PORT`)."""

    host: str
    port: int = Field(ge=0, le=65535)

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host=host.strip("[]"), port=int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Settings(BaseSettings):
    """Everything the service reads at start. Paths left empty derive from `home`."""

    model_config = SettingsConfigDict(
        env_prefix="PATINA_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(default_factory=default_home, description="Root of run/ and data/.")
    run_dir: Path | None = Field(None, description="Socket and token directory (home/run).")
    data_dir: Path | None = Field(None, description="Index, audit log (home/data).")

    # Public Unix socket: always on.
    socket_path: Path | None = Field(None, description="Public socket (run_dir/serve.sock).")
    socket_mode: int = Field(0o600, ge=0, le=0o777, description="Socket file mode.")
    socket_group: str | None = Field(None, description="Group to own the sockets (name or gid).")
    run_dir_mode: int = Field(
        0o700,
        ge=0,
        le=0o7777,
        description="Widest run dir mode: 0700 plus group r-x; group write only with the "
        "sticky bit (1770).",
    )
    allowed_uids: list[int] = Field(
        default_factory=list, description="Peer uids allowed on the public socket (own uid)."
    )

    # Admin socket: the sidecar pushes secrets here.
    admin_socket_path: Path | None = Field(None, description="Admin socket (run_dir/admin.sock).")
    admin_socket_mode: int = Field(0o600, ge=0, le=0o777, description="Admin socket file mode.")
    admin_allowed_uids: list[int] = Field(
        default_factory=list, description="Peer uids allowed on the admin socket (own uid)."
    )
    admin_enabled: bool = Field(True, description="Serve the admin socket.")
    service_uid: int | None = Field(
        None,
        ge=0,
        description="Clients: uid the service runs as; a socket served by another uid is "
        "refused (own uid or the run dir's owner).",
    )

    # TLS TCP: opt-in.
    tcp: HostPort | None = Field(None, description="TCP listen address HOST:PORT (off).")
    tls_cert: Path | None = Field(None, description="Server certificate chain (PEM).")
    tls_key: Path | None = Field(None, description="Server private key (PEM).")
    tls_client_ca: Path | None = Field(None, description="Require client certs from this CA.")
    insecure: bool = Field(False, description="Allow plain TCP, on loopback only.")
    serve_token: SecretStr | None = Field(None, description="Bearer token (PATINA_SERVE_TOKEN).")
    tokens_file: Path | None = Field(None, description="Named, hashed tokens with scopes (TOML).")
    generated_token_file: Path | None = Field(
        None, description="Where a token generated at start goes (run_dir/serve.token)."
    )

    metrics_listen: HostPort | None = Field(None, description="Plain port serving /metrics only.")

    # HTTP hardening.
    max_body_bytes: int = Field(MIB, ge=1024, description="Request body cap.")
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="Request line + headers cap.")
    header_timeout_secs: float = Field(10.0, gt=0, description="Time to send all headers.")
    body_timeout_secs: float = Field(30.0, gt=0, description="Time between body chunks.")
    keepalive_timeout_secs: float = Field(5.0, gt=0, description="Idle keep-alive close.")
    max_connections: int = Field(
        1024, ge=1, description="Open connections per listener (TCP: counted from accept)."
    )
    tls_handshake_timeout_secs: float = Field(
        5.0, gt=0, le=60, description="Time a TCP client has to complete the TLS handshake."
    )
    shutdown_grace_secs: float = Field(10.0, ge=0, description="Drain time on SIGTERM.")

    # Execution bounding for query work.
    max_concurrent_queries: int = Field(4, ge=1, description="Gate size; beyond it 503.")
    query_timeout_ms: int = Field(5000, ge=1, description="Deadline per query; past it 504.")
    max_limit: int = Field(1000, ge=1, description="`limit` is clamped to this.")

    log_format: Literal["text", "json"] = Field("text", description="text or json lines.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error."
    )

    secrets_dir: Path | None = Field(
        None, description="Extra directory of secret files (besides /run/secrets)."
    )

    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    remo: RemoSettings = Field(default_factory=RemoSettings)
    mothers: list[MotherNode] = Field(default_factory=list)
    mcp: McpSettings = Field(default_factory=McpSettings)

    @field_validator("tcp", "metrics_listen", mode="before")
    @classmethod
    def _parse_host_port(cls, value: Any) -> Any:
        return HostPort.parse(value) if isinstance(value, str) else value

    @field_validator("socket_mode", "admin_socket_mode", "run_dir_mode", mode="before")
    @classmethod
    def _parse_octal(cls, value: Any) -> Any:
        # "0660" from an env var or TOML string means octal, as it does for chmod.
        return int(value, 8) if isinstance(value, str) else value

    @field_validator("run_dir_mode")
    @classmethod
    def _check_run_dir_mode(cls, value: int) -> int:
        return check_run_dir_mode(value)

    # Derived paths: resolved once so every module sees the same answer.
    @property
    def resolved_run_dir(self) -> Path:
        return (self.run_dir or self.home / "run").expanduser()

    @property
    def resolved_data_dir(self) -> Path:
        return (self.data_dir or self.home / "data").expanduser()

    @property
    def resolved_socket_path(self) -> Path:
        return self.socket_path or self.resolved_run_dir / "serve.sock"

    @property
    def resolved_admin_socket_path(self) -> Path:
        return self.admin_socket_path or self.resolved_run_dir / "admin.sock"

    @property
    def resolved_generated_token_file(self) -> Path:
        return self.generated_token_file or self.resolved_run_dir / "serve.token"

    @property
    def peer_uids(self) -> frozenset[int]:
        return frozenset(self.allowed_uids or [os.getuid()])

    @property
    def admin_peer_uids(self) -> frozenset[int]:
        return frozenset(self.admin_allowed_uids or [os.getuid()])

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_config_file))
        secret_dirs = [d for d in _secret_dirs() if d.is_dir()]
        if secret_dirs:
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secret_dirs))
        return tuple(sources)


# The TOML file path is a load-time input, not a setting; it is passed through this module
# variable only for the duration of one `load_settings` call.
_config_file: Path | None = None


def _secret_dirs() -> list[Path]:
    dirs = [DEFAULT_SECRETS_DIR]
    extra = os.environ.get("PATINA_SECRETS_DIR")
    if extra:
        dirs.append(Path(extra))
    return dirs


def check_run_dir_mode(mode: int) -> int:
    """A run dir mode is judged bit by bit: the owner needs rwx; others get nothing; the
    group may read and search, and may write only with the sticky bit, which keeps a group
    member from unlinking or renaming the service's sockets."""
    if mode & ~0o3770:
        raise ValueError(f"{mode:04o} gives rights to other users (allowed: 0700-0770, 1770)")
    if mode & 0o700 != 0o700:
        raise ValueError(f"{mode:04o} does not give the owner rwx (0700)")
    if mode & 0o020 and not mode & 0o1000:
        raise ValueError(
            f"{mode:04o} lets the group replace the sockets: a group-writable run dir "
            "needs the sticky bit (e.g. 1770)"
        )
    return mode


class SettingsError(Exception):
    """A setting is invalid; the message names it. The CLI turns this into exit code 2."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from every source, or raise SettingsError naming the bad setting."""
    global _config_file
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist or is not a file")
    _config_file = config_file
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    except (ValueError, OSError) as exc:
        raise SettingsError(f"invalid settings: {exc}") from None
    finally:
        _config_file = None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: `setting <dotted name>: <message>` (never the input value)."""
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        lines.append(f"invalid setting {name}: {err['msg']}")
    return "; ".join(lines)
