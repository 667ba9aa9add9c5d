"""Who is calling, as a value: a Principal and the scopes it may hold.

This module imports nothing of the package, so every layer (authentication, the secrets
policy and broker, the scry entry point, future channels) can name a caller without
pulling in the web stack or the shared resources.
"""

from __future__ import annotations

from dataclasses import dataclass

# Scopes. Local socket peers are the machine's owner and hold all of the public ones;
# `admin` exists only on the admin socket.
SCOPE_SCRY = "scry"
SCOPE_INDEX = "index"
SCOPE_SECRETS = "secrets"
SCOPE_ADMIN = "admin"
LOCAL_SCOPES = frozenset({SCOPE_SCRY, SCOPE_INDEX, SCOPE_SECRETS})
ADMIN_SCOPES = frozenset({SCOPE_ADMIN})
PROJECT_SCOPES = frozenset({SCOPE_SECRETS})


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `name` is stable and safe to log and audit."""

    transport: str
    name: str
    scopes: frozenset[str]
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    token_name: str | None = None
    cert_subject: str | None = None
    # The project whose socket the caller came through (remo's per-project sockets): the
    # socket, not the uid, is the identity there.
    project: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes
