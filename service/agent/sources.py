"""Where the sidecar reads secrets from: an age vault, a dotenv file, a directory of files
(a mounted Kubernetes Secret, a Docker/Compose secrets dir), or a Patina vault directory
(pushed under the env names its registry gives).

Each source answers two questions: `change_stamp()` (cheap, from file metadata: has anything
changed?) and `load()` (the whole set, or SourceError). Messages name files, lines and
secret names, never values.

A Kubernetes Secret volume looks like this, and changes by atomically re-pointing `..data`:

    dir/..2024_05_01_10_00_00.123/KEY   the real files of one version
    dir/..data -> ..2024_05_01_10_00_00.123
    dir/KEY -> ..data/KEY

`load()` resolves `..data` once and reads every file from that one version, so a swap in
the middle of a read never mixes two versions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from service.agent.dotenv import parse_dotenv
from service.fileio import file_identity
from service.secret_names import NAME_RULE, valid_name

KINDS = ("age", "dotenv", "dir", "patina")
K8S_DATA = "..data"


class SourceError(Exception):
    """The source cannot be read or is malformed; the message is safe to print."""


# The identities of a source's files: equal stamps mean nothing changed.
ChangeStamp = tuple[object, ...]


@dataclass(frozen=True)
class SidecarSource:
    """A parsed `--source KIND:PATH` (plus the identity file for age)."""

    kind: str
    path: Path
    identity: Path | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"

    @classmethod
    def parse(cls, spec: str, *, identity: Path | None = None) -> SidecarSource:
        """`age:PATH`, `dotenv:PATH`, `dir:PATH` or `patina:DIR`; age and patina need an
        identity file."""
        kind, sep, path = spec.partition(":")
        if not sep or kind not in KINDS or not path:
            raise SourceError(
                "--source must be one of age:PATH, dotenv:PATH, dir:PATH, patina:DIR "
                f"(got {spec!r})"
            )
        encrypted = kind in ("age", "patina")
        if encrypted and identity is None:
            raise SourceError(f"--identity FILE is required with a {kind}: source")
        return cls(kind=kind, path=Path(path), identity=identity if encrypted else None)

    def change_stamp(self) -> ChangeStamp:
        """Changes whenever the source's content may have changed."""
        if self.kind == "dir":
            return self._dir_change_stamp()
        if self.kind == "patina":
            files = [self.path / "vault.age", self.path / "secrets.toml"]
            return tuple(file_identity(f) for f in [*files, *filter(None, [self.identity])])
        parts: list[object] = [file_identity(self.path)]
        if self.identity is not None:
            parts.append(file_identity(self.identity))
        return tuple(parts)

    def load(self) -> dict[str, str]:
        """Read the whole set, or raise SourceError."""
        if self.kind == "dotenv":
            return self._load_dotenv()
        if self.kind == "age":
            return self._load_age()
        if self.kind == "patina":
            return self._load_patina()
        # A Kubernetes swap can remove the version being read; one retry reads the new one.
        try:
            return self._load_dir()
        except FileNotFoundError:
            try:
                return self._load_dir()
            except FileNotFoundError as exc:
                raise SourceError(
                    f"{self}: files vanished while reading ({exc.filename})"
                ) from None

    def _load_dotenv(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SourceError(f"{self}: file not found") from None
        except UnicodeDecodeError:
            raise SourceError(f"{self}: not UTF-8 text") from None
        except OSError as exc:
            raise SourceError(f"{self}: {exc.strerror or exc}") from None
        try:
            return parse_dotenv(text)
        except ValueError as exc:
            raise SourceError(f"{self}: {exc}") from None

    def _load_age(self) -> dict[str, str]:
        # The vault module (age via pyrage, dotenv inside) is shared with `patina secrets`.
        from service.agent.vault import VaultError, read_vault

        assert self.identity is not None
        if not self.identity.is_file():
            raise SourceError(f"identity file {self.identity} not found")
        try:
            return read_vault(self.path, self.identity)
        except VaultError as exc:
            raise SourceError(f"{self}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise SourceError(f"{self}: cannot decrypt ({type(exc).__name__})") from None

    def _load_patina(self) -> dict[str, str]:
        from service.agent.patina_format import PatinaPaths
        from service.agent.patina_vault import PatinaVault
        from service.agent.vault import IdentitySource, VaultError, read_identity_file

        assert self.identity is not None
        if not self.path.is_dir():
            raise SourceError(f"{self}: not a directory")
        try:
            identity = IdentitySource(read_identity_file(self.identity), str(self.identity))
            vault = PatinaVault(PatinaPaths.of_directory(self.path), identity)
            if not vault.paths.vault.exists():
                raise SourceError(f"{self}: no vault.age")
            # Env names (GITHUB_TOKEN) are already broker names: what `secrets run` asks for.
            return vault.values_by_env()
        except VaultError as exc:
            raise SourceError(f"{self}: {exc}") from None

    def _version_dir(self) -> Path:
        if not self.path.is_dir():
            raise SourceError(f"{self}: not a directory")
        data = self.path / K8S_DATA
        # Resolve `..data` once: everything below is read from that single version.
        return data.resolve(strict=True) if data.exists() else self.path

    def _dir_change_stamp(self) -> ChangeStamp:
        data = self.path / K8S_DATA
        link = os.readlink(data) if data.is_symlink() else None
        try:
            names = sorted(os.listdir(self.path))
        except OSError:
            return ("missing",)
        entries = tuple(
            (name, file_identity(self.path / name)) for name in names if not name.startswith(".")
        )
        return (link, entries)

    def _load_dir(self) -> dict[str, str]:
        base = self._version_dir()
        values: dict[str, str] = {}
        for name in sorted(os.listdir(base)):
            path = base / name
            if name.startswith(".") or path.is_dir():
                continue
            if not valid_name(name):
                raise SourceError(f"{self}: file {name!r} is not a valid secret name ({NAME_RULE})")
            try:
                values[name] = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                raise SourceError(f"{self}: {name} is not UTF-8 text") from None
            except PermissionError:
                raise SourceError(f"{self}: {name} is not readable") from None
        return values
