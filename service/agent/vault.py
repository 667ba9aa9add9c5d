"""The age vault: a dotenv file encrypted to X25519 recipients, readable by Debian's `age`.

Layout (every file interoperates with the `age` CLI):

* ``vault.age`` — `age -R vault.age.recipients` of a dotenv text (binary age format);
* ``vault.age.recipients`` — one ``age1…`` public key per line (an age recipients file);
* the identity — an age identity file (``AGE-SECRET-KEY-1…`` lines, ``#`` comments), 0600.

Values live in memory only while a command runs; files are replaced atomically with mode
0600, never chmod-ed after writing. No message raised here contains a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from pyrage import x25519

from service.agent.dotenv import parse_dotenv
from service.agent.patina_format import PatinaFormatError, is_patina_vault_text, parse_vault_text
from service.fileio import read_private, write_private
from service.secret_names import NAME_RULE, valid_name

IDENTITY_ENV = "PATINA_IDENTITY"
# File name of the identity in a secrets mount (/run/secrets or PATINA_SECRETS_DIR).
MOUNT_IDENTITY_NAME = "patina_identity"
SECRETS_MOUNTS = (Path("/run/secrets"),)


class VaultError(Exception):
    """A vault operation failed; the message names files and secret names, never values."""


def default_vault_path(home: Path) -> Path:
    """Where `patina secrets` keeps the vault unless told otherwise."""
    return home / "secrets" / "vault.age"


def default_identity_path(home: Path) -> Path:
    """Where `patina secrets init` writes the identity unless told otherwise."""
    return home / "secrets" / "identity.txt"


def recipients_path(vault: Path) -> Path:
    """The public recipients file kept next to a vault (usable as `age -R`)."""
    return vault.with_name(vault.name + ".recipients")


def validate_name(name: str) -> str:
    """The name itself when it is a legal secret name (the broker's rule), else VaultError."""
    if not valid_name(name):
        raise VaultError(f"secret {NAME_RULE}")
    return name


# --- identities -------------------------------------------------------------------------


def parse_identities(text: str) -> list[Any]:
    """Parse an age identity file's text (comments and blank lines allowed)."""
    identities = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            # The line is key material: never echo it.
            raise VaultError("identity is not an age X25519 secret key") from None
    if not identities:
        raise VaultError("identity holds no AGE-SECRET-KEY line")
    return identities


def new_identity_text() -> tuple[str, str]:
    """A fresh identity in `age-keygen` format and its public key."""
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    return f"# public key: {public}\n{identity}\n", public


def identity_public_keys(text: str) -> list[str]:
    """The public keys (`age1…`) of the identities in an identity file's text."""
    return [str(identity.to_public()) for identity in parse_identities(text)]


@dataclass(frozen=True)
class IdentitySource:
    """Where an identity came from (for messages: a path or an env var name, not the key)."""

    text: str
    origin: str

    def __repr__(self) -> str:
        return f"IdentitySource(origin={self.origin!r})"


def read_identity_file(path: Path) -> str:
    """Read an identity file; it must not be readable by group or others."""
    try:
        return read_private(path, what="identity file").decode()
    except FileNotFoundError:
        raise VaultError(f"identity file {path} does not exist") from None
    except PermissionError as exc:
        raise VaultError(str(exc)) from None


def find_identity(
    explicit: Path | None, *, home: Path, env: Mapping[str, str] | None = None
) -> IdentitySource:
    """Find the identity: an explicit file, then `PATINA_IDENTITY` (the key itself or a
    file path), then the default file under home, then a secrets mount."""
    env = os.environ if env is None else env
    if explicit is not None:
        return IdentitySource(read_identity_file(explicit), str(explicit))
    value = env.get(IDENTITY_ENV, "").strip()
    if value:
        if value.startswith("AGE-SECRET-KEY-"):
            return IdentitySource(value + "\n", IDENTITY_ENV)
        return IdentitySource(read_identity_file(Path(value)), value)
    default = default_identity_path(home)
    if default.exists():
        return IdentitySource(read_identity_file(default), str(default))
    mounts = list(SECRETS_MOUNTS)
    if env.get("PATINA_SECRETS_DIR"):
        mounts.append(Path(env["PATINA_SECRETS_DIR"]))
    for mount in mounts:
        candidate = mount / MOUNT_IDENTITY_NAME
        if candidate.is_file():
            # Kubernetes mounts secrets 0644 by default; a mount is trusted as the
            # operator's choice, so only the owner-only rule for home files applies here.
            return IdentitySource(candidate.read_text(), str(candidate))
    raise VaultError(
        f"no identity: pass --identity FILE, set {IDENTITY_ENV}, "
        f"or run `patina secrets init` (looked for {default})"
    )


# --- dotenv serialisation -----------------------------------------------------------------

_OTHER_LINE_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def format_dotenv(values: Mapping[str, str]) -> str:
    """Serialise name → value as dotenv text that `parse_dotenv` and shells read back.

    Single quotes are literal, so they are used whenever the value allows; otherwise a
    double-quoted form with backslash escapes.
    """
    lines = []
    for name in sorted(values):
        value = values[name]
        if _OTHER_LINE_BREAKS.search(value):
            # str.splitlines() (the parser's line splitter) breaks on these and has no escape.
            raise VaultError(f"value of {name} holds a control line break (\\v, \\f, U+2028...)")
        if "'" not in value and "\n" not in value and "\r" not in value:
            lines.append(f"{name}='{value}'")
        else:
            escaped = (
                value.replace("\\", "\\\\")
                .replace('"', '\\"')
                .replace("\n", "\\n")
                .replace("\r", "\\r")
                .replace("$", "\\$")
            )
            lines.append(f'{name}="{escaped}"')
    return "".join(line + "\n" for line in lines)


# --- encryption -------------------------------------------------------------------------


def parse_recipients(text: str) -> list[str]:
    """Public keys from a recipients file's text; each must be an X25519 `age1…` key."""
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        validate_recipient(line)
        keys.append(line)
    return keys


def validate_recipient(key: str) -> str:
    """Check an `age1…` public key; raise VaultError naming it otherwise."""
    try:
        x25519.Recipient.from_str(key)
    except pyrage.RecipientError:
        raise VaultError(f"not an age X25519 recipient: {key[:80]!r}") from None
    return key


def encrypt_text(plaintext: str, recipients: list[str]) -> bytes:
    """Encrypt to every recipient (binary age format, as `age -R` writes)."""
    if not recipients:
        raise VaultError("a vault needs at least one recipient")
    parsed = [x25519.Recipient.from_str(key) for key in recipients]
    data: bytes = pyrage.encrypt(plaintext.encode(), parsed)
    return data


def decrypt_bytes(ciphertext: bytes, identity_text: str, *, origin: str) -> str:
    """Decrypt an age file (binary or armored) with the identities in `identity_text`."""
    identities = parse_identities(identity_text)
    if ciphertext.lstrip().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----"):
        ciphertext = _dearmor(ciphertext)
    try:
        plaintext: bytes = pyrage.decrypt(ciphertext, identities)
    except pyrage.DecryptError:
        raise VaultError(f"cannot decrypt {origin}: no matching identity or damaged file") from None
    try:
        return plaintext.decode()
    except UnicodeDecodeError:
        raise VaultError(f"{origin} does not hold UTF-8 dotenv text") from None


def _dearmor(data: bytes) -> bytes:
    # pyrage's decrypt takes the binary format; `age -a` output is PEM-style base64.
    import base64

    lines = data.decode("ascii", "replace").strip().splitlines()
    body = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("-----")]
    try:
        return base64.b64decode("".join(body), validate=True)
    except ValueError:
        raise VaultError("damaged armored age file") from None


def read_vault(path: Path, identity_file: Path) -> dict[str, str]:
    """Decrypt the vault at `path` with the identity file and parse its dotenv text.

    This is the sidecar's `age:` source; a missing or undecryptable vault raises VaultError.
    """
    return open_vault(path, read_identity_file(identity_file), origin=str(path))


def open_vault(path: Path, identity_text: str, *, origin: str | None = None) -> dict[str, str]:
    """Decrypt and parse a vault with identities given as text."""
    try:
        ciphertext = path.read_bytes()
    except FileNotFoundError:
        raise VaultError(f"vault {path} does not exist (run `patina secrets init`)") from None
    text = decrypt_bytes(ciphertext, identity_text, origin=origin or str(path))
    if is_patina_vault_text(text):
        # Patina's own TOML vault (patina_format.py): the two formats are told apart by
        # content, so any vault file reads whichever tool wrote it.
        try:
            return parse_vault_text(text, origin=origin or str(path)).values
        except PatinaFormatError as exc:
            raise VaultError(str(exc)) from None
    try:
        return parse_dotenv(text)
    except ValueError as exc:
        # The dotenv parser's messages name lines, not values.
        raise VaultError(f"{origin or path}: {exc}") from None


def write_vault(path: Path, values: Mapping[str, str], recipients: list[str]) -> None:
    """Encrypt `values` to `recipients` and replace the vault atomically (0600)."""
    for name in values:
        validate_name(name)
    write_private(path, encrypt_text(format_dotenv(values), recipients))


def read_recipients(vault: Path) -> list[str]:
    """The vault's recipients; a vault without a recipients file cannot be re-encrypted."""
    path = recipients_path(vault)
    try:
        return parse_recipients(path.read_text())
    except FileNotFoundError:
        raise VaultError(f"recipients file {path} does not exist") from None


def write_recipients(vault: Path, keys: list[str]) -> None:
    """Replace the recipients file (public keys: 0644 would do, 0600 costs nothing)."""
    text = "# age recipients of " + vault.name + "\n" + "".join(k + "\n" for k in keys)
    write_private(recipients_path(vault), text.encode())


class Vault:
    """One vault file with its recipients and the identity that opens it."""

    def __init__(self, path: Path, identity: IdentitySource) -> None:
        self.path = path
        self.identity = identity

    def __repr__(self) -> str:
        return f"Vault(path={str(self.path)!r}, identity={self.identity.origin!r})"

    def load(self) -> dict[str, str]:
        """Every name and value (decrypted in memory)."""
        return open_vault(self.path, self.identity.text)

    def names(self) -> list[str]:
        return sorted(self.load())

    def set(self, name: str, value: str) -> bool:
        """Add or replace one secret; True when it replaced an existing one."""
        validate_name(name)
        values = self._load_own_format()
        existed = name in values
        values[name] = value
        write_vault(self.path, values, read_recipients(self.path))
        return existed

    def remove(self, name: str) -> None:
        values = self._load_own_format()
        if name not in values:
            raise VaultError(f"no secret named {name!r} in {self.path}")
        del values[name]
        write_vault(self.path, values, read_recipients(self.path))

    def recipients(self) -> list[str]:
        return read_recipients(self.path)

    def _load_own_format(self) -> dict[str, str]:
        """The values, for a change written back as dotenv: a Patina-format vault is left
        to the commands that keep its format (`patina secrets add NAME`, no --vault)."""
        if not self.path.exists():
            return self.load()  # raises, naming the missing file
        text = decrypt_bytes(self.path.read_bytes(), self.identity.text, origin=str(self.path))
        if is_patina_vault_text(text):
            raise VaultError(
                f"{self.path} is a Patina vault: change it with `patina secrets add NAME` "
                "(without --vault), which keeps its format"
            )
        return self.load()

    def add_recipient(self, key: str) -> bool:
        """Re-encrypt to one more recipient; False when it already was one."""
        validate_recipient(key)
        keys = read_recipients(self.path)
        if key in keys:
            return False
        values = self._load_own_format()
        keys.append(key)
        write_vault(self.path, values, keys)
        write_recipients(self.path, keys)
        return True

    def remove_recipient(self, key: str) -> None:
        """Re-encrypt without `key`. Refuses to drop the last recipient or every key this
        identity holds (the vault would become unreadable here)."""
        keys = read_recipients(self.path)
        if key not in keys:
            raise VaultError(f"{key[:80]!r} is not a recipient of {self.path}")
        remaining = [k for k in keys if k != key]
        if not remaining:
            raise VaultError("refusing to remove the last recipient")
        own = set(identity_public_keys(self.identity.text))
        if not own & set(remaining):
            raise VaultError("refusing to remove the only recipient this identity can open")
        values = self._load_own_format()
        write_vault(self.path, values, remaining)
        write_recipients(self.path, remaining)


def init_vault(path: Path, identity_path: Path, *, identity_text: str | None = None) -> str:
    """Create an empty vault, generating an identity file unless one is given or exists.

    Returns the public key the vault is encrypted to.
    """
    if path.exists():
        raise VaultError(f"vault {path} already exists")
    if identity_text is None:
        if identity_path.exists():
            identity_text = read_identity_file(identity_path)
        else:
            identity_text, _ = new_identity_text()
            write_private(identity_path, identity_text.encode())
    public = identity_public_keys(identity_text)[0]
    write_vault(path, {}, [public])
    write_recipients(path, [public])
    return public
