"""Bearer tokens for TCP callers: named, hashed, scoped, compared in constant time.

Sources, all active at once: PATINA_SERVE_TOKEN (name `env`), a tokens file (TOML
`[[tokens]] name, sha256, scopes`), and — when TCP is on and neither exists — one generated
at start and written 0600 to run/serve.token. Only token hashes are kept in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from service.errors import StartupError
from service.fileio import write_private
from service.settings import Settings

log = logging.getLogger("patina.tokens")
TOKEN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

DEFAULT_TOKEN_SCOPES = frozenset({"scry", "secrets"})
TOKEN_BYTES = 32


@dataclass(frozen=True)
class TokenRecord:
    name: str
    digest: bytes  # sha256 of the token; the token itself is never stored
    scopes: frozenset[str]

    def __repr__(self) -> str:
        return f"TokenRecord(name={self.name!r}, scopes={sorted(self.scopes)!r})"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return "pt_" + secrets.token_urlsafe(TOKEN_BYTES)


class TokenStore:
    def __init__(self, records: list[TokenRecord] | None = None) -> None:
        self._records = list(records or [])

    def add(self, record: TokenRecord) -> None:
        self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def verify(self, token: str) -> TokenRecord | None:
        """The record whose hash matches, comparing against every record (no early exit)."""
        presented = digest(token)
        found: TokenRecord | None = None
        for record in self._records:
            if hmac.compare_digest(presented, record.digest):
                found = record
        return found


def load_tokens_file(path: Path) -> list[TokenRecord]:
    """Parse a tokens file; raises ValueError with the entry at fault."""
    data = tomllib.loads(path.read_text())
    records = []
    for i, entry in enumerate(data.get("tokens", [])):
        try:
            name = str(entry["name"])
            hexdigest = str(entry["sha256"])
            scopes = frozenset(str(s) for s in entry.get("scopes", sorted(DEFAULT_TOKEN_SCOPES)))
            records.append(TokenRecord(name, bytes.fromhex(hexdigest), scopes))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"tokens file {path}: entry {i} is invalid ({exc})") from None
    return records


def append_to_tokens_file(path: Path, name: str, token: str, scopes: list[str]) -> None:
    """Add a hashed token entry (rewriting the file atomically, 0600)."""
    if not TOKEN_NAME.match(name):
        raise ValueError("token names are 1-64 letters, digits, '_', '.' or '-'")
    existing = load_tokens_file(path) if path.exists() else []
    if any(r.name == name for r in existing):
        raise ValueError(f"a token named {name!r} already exists in {path}")
    existing.append(TokenRecord(name, digest(token), frozenset(scopes)))
    lines = []
    for r in existing:
        scope_list = ", ".join(f'"{s}"' for s in sorted(r.scopes))
        lines.append(
            f'[[tokens]]\nname = "{r.name}"\nsha256 = "{r.digest.hex()}"\nscopes = [{scope_list}]\n'
        )
    write_private(path, "\n".join(lines).encode())


def generate_token_file(path: Path) -> str:
    token = new_token()
    write_private(path, (token + "\n").encode())
    return token


def build_token_store(settings: Settings) -> TokenStore:
    """Collect tokens from every source; generate one when TCP is on and none exists."""
    store = TokenStore()
    if settings.serve_token is not None:
        store.add(
            TokenRecord(
                "env", digest(settings.serve_token.get_secret_value()), DEFAULT_TOKEN_SCOPES
            )
        )
    if settings.tokens_file is not None:
        try:
            for record in load_tokens_file(settings.tokens_file):
                store.add(record)
        except (OSError, ValueError) as exc:
            raise StartupError(f"cannot load tokens file: {exc}") from None
    if settings.tcp is not None and len(store) == 0:
        path = settings.resolved_generated_token_file
        token = generate_token_file(path)
        store.add(TokenRecord("generated", digest(token), DEFAULT_TOKEN_SCOPES))
        log.warning("generated a bearer token for TCP callers; it is in %s", path)
    return store
