"""Patina's own secrets files, read and written as Patina writes them.

Patina (the Rust tool this service replaces) keeps two vaults, each a directory:

* global, ``$PATINA_HOME`` (``~/.patina``): ``vault.age``, ``recipient.txt``, ``secrets.toml``;
* project, ``<root>/.patina``: ``vault.age``, ``recipients.txt`` (plural), ``secrets.toml``.

``vault.age`` is age-encrypted (Patina writes it armored; binary reads too) TOML::

    [meta]
    version = 1
    created_at = "2026-01-02T03:04:05.123456Z"
    modified_at = "2026-01-02T03:04:05.123456Z"

    [values]
    github-token = "ghp_..."

``secrets.toml`` (mode 0600) maps each secret name to the environment variable it is
injected as: ``[secrets] github-token = { env = "GITHUB_TOKEN" }``. Names are lowercase
letters, digits and single hyphens, starting with a letter; an env name, when not given,
is the name upper-cased with ``-`` turned into ``_``.

Nothing here writes a value anywhere but into an encrypted vault; messages name files and
secret names only.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VAULT_VERSION = 1
REGISTRY_VERSION = 1
PROJECT_DIR = ".patina"
_NAME = re.compile(r"[a-z](?:-?[a-z0-9])*")
_ENV = re.compile(r"[A-Z][A-Z0-9_]*")
NAME_RULE = "lowercase letters, digits and single hyphens, starting with a letter (github-token)"
ENV_RULE = "upper-case letters, digits and underscores, starting with a letter (GITHUB_TOKEN)"


class PatinaFormatError(ValueError):
    """A Patina file is malformed; the message names the file and key, never a value."""


def valid_patina_name(name: str) -> bool:
    """Patina's rule for secret names: `github-token`, `db`, `app2-key`."""
    return len(name) <= 128 and _NAME.fullmatch(name) is not None


def valid_env_name(name: str) -> bool:
    """Patina's rule for environment variable names: `GITHUB_TOKEN`."""
    return len(name) <= 128 and _ENV.fullmatch(name) is not None


def infer_env_name(name: str) -> str:
    """The env name Patina gives a secret when none is given: github-token -> GITHUB_TOKEN."""
    return name.upper().replace("-", "_")


@dataclass(frozen=True)
class PatinaPaths:
    """The three files of one Patina vault directory."""

    directory: Path
    scope: str  # "global" or "project"

    @property
    def vault(self) -> Path:
        return self.directory / "vault.age"

    @property
    def registry(self) -> Path:
        return self.directory / "secrets.toml"

    @property
    def recipients(self) -> Path:
        # Patina's global file is singular (you), the project's plural (a team).
        name = "recipient.txt" if self.scope == "global" else "recipients.txt"
        return self.directory / name

    @classmethod
    def global_at(cls, home: Path) -> PatinaPaths:
        return cls(home, "global")

    @classmethod
    def project_at(cls, root: Path) -> PatinaPaths:
        return cls(root / PROJECT_DIR, "project")

    @classmethod
    def of_directory(cls, directory: Path) -> PatinaPaths:
        """A directory given as such (e.g. the sidecar's `patina:DIR`): a project's
        `.patina` holds `recipients.txt`, the global home `recipient.txt`."""
        if (directory / "recipient.txt").exists() and not (directory / "recipients.txt").exists():
            return cls(directory, "global")
        return cls(directory, "project")


def find_project_root(start: Path, *, home: Path) -> Path | None:
    """The nearest directory at or above `start` holding a `.patina` directory, other than
    the one that is the global home itself."""
    home = home.expanduser().resolve()
    for directory in (start.resolve(), *start.resolve().parents):
        candidate = directory / PROJECT_DIR
        if candidate.is_dir() and candidate.resolve() != home:
            return directory
    return None


# --- the vault's TOML -----------------------------------------------------------------


def now_rfc3339() -> str:
    """UTC time as Patina's chrono writes it (RFC 3339, microseconds, `Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class VaultDocument:
    """A decrypted Patina vault."""

    values: dict[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=now_rfc3339)
    modified_at: str = ""

    def __repr__(self) -> str:
        return f"VaultDocument(names={sorted(self.values)!r})"

    def touch(self) -> None:
        self.modified_at = now_rfc3339()


def is_patina_vault_text(text: str) -> bool:
    """True when a decrypted vault is Patina's TOML rather than dotenv text: it has a
    `[meta]` table. (A dotenv file cannot: `[` starts no valid dotenv line.)"""
    return any(line.strip() == "[meta]" for line in text.splitlines())


def _time_text(value: Any, where: str) -> str:
    if isinstance(value, datetime):  # an unquoted TOML datetime, as a hand-written file may have
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, str):
        return value
    raise PatinaFormatError(f"{where} must be an RFC 3339 time")


def parse_vault_text(text: str, *, origin: str) -> VaultDocument:
    """Parse a decrypted Patina vault; raise PatinaFormatError naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names a line and column, never the text there.
        raise PatinaFormatError(f"{origin}: not valid TOML ({exc})") from None
    meta = data.get("meta")
    if not isinstance(meta, dict):
        raise PatinaFormatError(f"{origin}: no [meta] table")
    if meta.get("version") != VAULT_VERSION:
        raise PatinaFormatError(f"{origin}: unsupported vault version (expected {VAULT_VERSION})")
    values = data.get("values", {})
    if not isinstance(values, dict):
        raise PatinaFormatError(f"{origin}: [values] must be a table")
    for name, value in values.items():
        if not isinstance(value, str):
            raise PatinaFormatError(f"{origin}: value of {name!r} must be a string")
    return VaultDocument(
        values=dict(values),
        created_at=_time_text(meta.get("created_at", now_rfc3339()), f"{origin}: created_at"),
        modified_at=_time_text(meta.get("modified_at", ""), f"{origin}: modified_at"),
    )


def toml_string(value: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's (\\b \\t \\n \\f \\r \\" \\\\ \\uXXXX);
    TOML also forbids a raw DEL. A lone surrogate has no TOML form at all."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PatinaFormatError("a value holds a lone surrogate, which TOML cannot carry") from None
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


def format_vault_text(document: VaultDocument) -> str:
    """Serialise a vault as Patina's serde/toml does (tables `[meta]` then `[values]`)."""
    modified = document.modified_at or document.created_at
    lines = [
        "[meta]",
        f"version = {VAULT_VERSION}",
        f"created_at = {toml_string(document.created_at)}",
        f"modified_at = {toml_string(modified)}",
        "",
        "[values]",
    ]
    lines += [
        f"{_toml_key(n)} = {toml_string(document.values[n])}" for n in sorted(document.values)
    ]
    return "\n".join(lines) + "\n"


# --- the registry ---------------------------------------------------------------------


def parse_registry_text(text: str, *, origin: str) -> dict[str, str]:
    """`secrets.toml` as name -> env name; raise PatinaFormatError naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PatinaFormatError(f"{origin}: not valid TOML ({exc})") from None
    version = data.get("version", REGISTRY_VERSION)
    if version != REGISTRY_VERSION:
        raise PatinaFormatError(f"{origin}: unsupported registry version {version!r}")
    entries = data.get("secrets", {})
    if not isinstance(entries, dict):
        raise PatinaFormatError(f"{origin}: [secrets] must be a table")
    out: dict[str, str] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("env"), str):
            raise PatinaFormatError(f'{origin}: secrets.{name} needs env = "NAME"')
        if not valid_env_name(entry["env"]):
            raise PatinaFormatError(f"{origin}: secrets.{name}: env name {ENV_RULE}")
        out[name] = entry["env"]
    return out


def read_registry(path: Path) -> dict[str, str]:
    """The registry at `path` (empty when there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise PatinaFormatError(f"cannot read {path}: {exc}") from None
    return parse_registry_text(text, origin=str(path))


def format_registry_text(entries: Mapping[str, str]) -> str:
    """`secrets.toml` as Patina reads it: `version`, then one inline table per secret."""
    lines = [
        "# Patina Secrets Registry",
        "# Maps secret names to environment variables",
        "",
        f"version = {REGISTRY_VERSION}",
        "",
        "[secrets]",
    ]
    lines += [f"{_toml_key(n)} = {{ env = {toml_string(entries[n])} }}" for n in sorted(entries)]
    return "\n".join(lines) + "\n"


def format_recipients_text(keys: list[str]) -> str:
    """A recipients file as Patina writes it (its header, one key per line)."""
    header = "# Patina Secrets Recipients\n# One age public key per line. Comments allowed.\n\n"
    return header + "".join(key + "\n" for key in keys)


def parse_recipients_text(text: str) -> list[str]:
    """Keys from a recipients file: comments, blank lines and `age1… # Alice` allowed."""
    keys = []
    for line in text.splitlines():
        key = line.split("#", 1)[0].strip()
        if key:
            keys.append(key)
    return keys
