"""Patina's vaults as a source of `patina secrets run` and `redact`: the global vault, then
the project's over it, every registered secret under its env name.

References name secrets by their env names (`${secret:GITHUB_TOKEN}`, `--env
GITHUB_TOKEN=GITHUB_TOKEN`): the names the sidecar pushes to the service too, so a command
written against one source works against the other. The placeholder shown for a value is
its `${secret:ENV}` reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from service.agent.patina_format import PatinaPaths, find_project_root
from service.agent.patina_vault import PatinaVault, merged_values_by_env, registered_env_names
from service.agent.run import Reference, Resolved, RunError, resolve_from_store
from service.agent.vault import IdentitySource, VaultError


def patina_vaults(home: Path, cwd: Path, identity: IdentitySource | None) -> list[PatinaVault]:
    """The Patina vault directories that exist: global, then the current project's."""
    found = []
    for paths in (
        PatinaPaths.global_at(home),
        *([PatinaPaths.project_at(root)] if (root := find_project_root(cwd, home=home)) else []),
    ):
        if paths.vault.exists() or paths.registry.exists():
            found.append(PatinaVault(paths, identity))
    return found


class PatinaSource:
    """Values of the Patina vaults, keyed by env name (decrypted once, on first use)."""

    def __init__(self, vaults: list[PatinaVault]) -> None:
        self._vaults = vaults
        self._values: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"PatinaSource({self._vaults!r})"

    def names(self) -> list[str]:
        """Registered env names (no decryption)."""
        try:
            return registered_env_names(self._vaults)
        except VaultError as exc:
            raise RunError(str(exc)) from None

    def _load(self) -> dict[str, str]:
        if self._values is None:
            try:
                self._values = merged_values_by_env(self._vaults)
            except VaultError as exc:
                raise RunError(str(exc)) from None
        return self._values

    def resolve(self, refs: Iterable[Reference]) -> dict[Reference, Resolved]:
        return resolve_from_store(
            refs, self._load, store="a Patina vault", missing="registered in the Patina vaults"
        )

    def everything(self) -> dict[Reference, Resolved]:
        return self.resolve(Reference("name", name) for name in self._load())
