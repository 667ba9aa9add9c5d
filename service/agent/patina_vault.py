"""A Patina vault directory (global or project): its age-encrypted TOML vault, its registry
and its recipients, changed the way Patina changes them.

Encryption and identities are the age vault's (service/agent/vault.py); the file formats
are Patina's (patina_format.py). Files are replaced atomically with mode 0600. A vault this
writes is armored, as Patina writes it; binary vaults (`age` without `-a`) read too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import pyrage
from pyrage import x25519

from service.agent.patina_format import (
    ENV_RULE,
    NAME_RULE,
    PatinaFormatError,
    PatinaPaths,
    VaultDocument,
    format_recipients_text,
    format_registry_text,
    format_vault_text,
    infer_env_name,
    is_patina_vault_text,
    parse_recipients_text,
    parse_vault_text,
    read_registry,
    valid_env_name,
    valid_patina_name,
)
from service.agent.vault import (
    IdentitySource,
    VaultError,
    decrypt_bytes,
    identity_public_keys,
    validate_recipient,
)
from service.fileio import write_private


@dataclass(frozen=True)
class VaultStatus:
    """What a bare `patina secrets` shows of one vault, read without decrypting."""

    paths: PatinaPaths
    exists: bool
    registered: dict[str, str]  # name -> env name
    recipients: list[str]


def encrypt_armored(plaintext: str, recipients: list[str]) -> bytes:
    """age-encrypt to every recipient, ASCII-armored as Patina writes its vaults."""
    if not recipients:
        raise VaultError("a vault needs at least one recipient")
    parsed = [x25519.Recipient.from_str(validate_recipient(key)) for key in recipients]
    data: bytes = pyrage.encrypt(plaintext.encode(), parsed, armored=True)
    return data


class PatinaVault:
    """One Patina vault directory. `identity` opens the vault (None: status only)."""

    def __init__(self, paths: PatinaPaths, identity: IdentitySource | None) -> None:
        self.paths = paths
        self.identity = identity

    def __repr__(self) -> str:
        return f"PatinaVault({str(self.paths.directory)!r}, {self.paths.scope})"

    # Reading.

    def registry(self) -> dict[str, str]:
        """name -> env name (no decryption)."""
        try:
            return read_registry(self.paths.registry)
        except PatinaFormatError as exc:
            raise VaultError(str(exc)) from None

    def recipients(self) -> list[str]:
        try:
            keys = parse_recipients_text(self.paths.recipients.read_text())
        except FileNotFoundError:
            return []
        for key in keys:
            validate_recipient(key)
        return keys

    def status(self) -> VaultStatus:
        return VaultStatus(
            self.paths, self.paths.vault.exists(), self.registry(), self.recipients()
        )

    def load(self) -> VaultDocument:
        """The decrypted vault (raises VaultError when absent or unreadable)."""
        if self.identity is None:
            raise VaultError(f"no identity to open {self.paths.vault}")
        try:
            ciphertext = self.paths.vault.read_bytes()
        except FileNotFoundError:
            raise VaultError(f"vault {self.paths.vault} does not exist") from None
        text = decrypt_bytes(ciphertext, self.identity.text, origin=str(self.paths.vault))
        if not is_patina_vault_text(text):
            raise VaultError(f"{self.paths.vault} is not a Patina vault (no [meta] table)")
        try:
            return parse_vault_text(text, origin=str(self.paths.vault))
        except PatinaFormatError as exc:
            raise VaultError(str(exc)) from None

    def values_by_env(self) -> dict[str, str]:
        """Every registered secret's value under its env name (a name the registry lists
        but the vault lacks is left out, as Patina leaves it out)."""
        registry = self.registry()
        if not registry or not self.paths.vault.exists():
            return {}
        values = self.load().values
        return {env: values[name] for name, env in registry.items() if name in values}

    # Changing.

    def add(self, name: str, value: str, *, env: str | None = None) -> tuple[str, bool]:
        """Store `name` (creating the vault if needed) and register it under `env`
        (inferred when None). Returns the env name and whether a vault was created."""
        if not valid_patina_name(name):
            raise VaultError(f"invalid secret name {name!r}: {NAME_RULE}")
        env = env or infer_env_name(name)
        if not valid_env_name(env):
            raise VaultError(f"invalid env name {env!r}: {ENV_RULE}")
        created = not self.paths.vault.exists()
        document = VaultDocument() if created else self.load()
        recipients = self.recipients() if not created else self._first_recipients()
        document.values[name] = value
        document.touch()
        self._write(document, recipients)
        if created:
            self._write_recipients(recipients)
        registry = self.registry()
        registry[name] = env
        self._write_registry(registry)
        return env, created

    def remove(self, name: str) -> None:
        document = self.load()
        if name not in document.values:
            raise VaultError(f"no secret named {name!r} in {self.paths.vault}")
        del document.values[name]
        document.touch()
        self._write(document, self.recipients())
        registry = self.registry()
        registry.pop(name, None)
        self._write_registry(registry)

    def add_recipient(self, key: str) -> bool:
        """Re-encrypt to one more recipient; False when it already was one."""
        validate_recipient(key)
        keys = self.recipients()
        if key in keys:
            return False
        document = self.load()
        keys.append(key)
        self._write(document, keys)
        self._write_recipients(keys)
        return True

    def remove_recipient(self, key: str) -> None:
        """Re-encrypt without `key`; never the last one, nor the last one we can open."""
        keys = self.recipients()
        if key not in keys:
            raise VaultError(f"{key[:80]!r} is not a recipient of {self.paths.vault}")
        remaining = [k for k in keys if k != key]
        if not remaining:
            raise VaultError("refusing to remove the last recipient")
        assert self.identity is not None
        if not set(identity_public_keys(self.identity.text)) & set(remaining):
            raise VaultError("refusing to remove the only recipient this identity can open")
        document = self.load()
        self._write(document, remaining)
        self._write_recipients(remaining)

    def _first_recipients(self) -> list[str]:
        existing = self.recipients()
        if existing:
            return existing
        if self.identity is None:
            raise VaultError("no identity: cannot create a vault")
        return identity_public_keys(self.identity.text)[:1]

    def _write(self, document: VaultDocument, recipients: list[str]) -> None:
        try:
            text = format_vault_text(document)
        except PatinaFormatError as exc:
            raise VaultError(str(exc)) from None
        self._ensure_dir()
        write_private(self.paths.vault, encrypt_armored(text, recipients))

    def _write_recipients(self, keys: list[str]) -> None:
        self._ensure_dir()
        write_private(self.paths.recipients, format_recipients_text(keys).encode())

    def _write_registry(self, registry: Mapping[str, str]) -> None:
        self._ensure_dir()
        write_private(self.paths.registry, format_registry_text(registry).encode())

    def _ensure_dir(self) -> None:
        old_umask = os.umask(0o077)  # parents made here are private too
        try:
            self.paths.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        finally:
            os.umask(old_umask)


def merged_values_by_env(vaults: list[PatinaVault]) -> dict[str, str]:
    """Global first, project over it: Patina's merge for `secrets run`."""
    merged: dict[str, str] = {}
    for vault in vaults:
        merged.update(vault.values_by_env())
    return merged


def registered_env_names(vaults: list[PatinaVault]) -> list[str]:
    """Every env name the registries list (no decryption), sorted."""
    names: set[str] = set()
    for vault in vaults:
        names.update(vault.registry().values())
    return sorted(names)
