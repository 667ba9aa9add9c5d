"""Which files hold secrets, so that the indexer leaves them out.

An index answers anyone with the `scry` scope, and that scope grants no secret: a value
that reaches the index has gone around the secrets allowlists. So files that commonly hold
credentials are not indexed unless the configuration names them explicitly:

* by name (gitignore-style patterns, matched against the path inside the root): dotenv
  files, private keys, age identities and vaults, token files, credential files of common
  tools (netrc, npm, PyPI, git, kubeconfig, cloud CLIs, Docker, Terraform, Vault), plus
  `knowledge.secret_files_extra`;
* by content: any file holding a PEM private key, an age identity, an age vault or a
  kubeconfig's client key (a `*.pem` with only a certificate is indexed);
* a file matched by `knowledge.secret_files_allow` is indexed even so: the explicit opt-in.

The service's own home, run and data directories (and its key and token files) are never
indexed when they fall inside a root; the walker leaves them out by inode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pathspec

from service.knowledge.config import KnowledgeSettings

SECRET_NAME_PATTERNS: tuple[str, ...] = (
    # dotenv
    ".env",
    ".env.*",
    "*.env",
    # private keys and key stores
    "*.key",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
    "id_xmss",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    # age vaults (identities are found by their content)
    "*.age",
    # tokens and credential files
    "*.token",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".pgpass",
    ".htpasswd",
    ".vault-token",
    ".terraformrc",
    "credentials.tfrc.json",
    "**/.docker/config.json",
    # kubeconfigs
    "kubeconfig",
    "*.kubeconfig",
    "kubeconfig.y*ml",
    "**/.kube/config",
    # cloud CLIs
    "**/.aws/credentials",
    "**/.aws/config",
    "application_default_credentials.json",
    "**/.config/gcloud/**",
    "**/.azure/**",
)

# What secret-bearing content starts with, wherever it sits in a file (a service-account
# JSON holds its key as "-----BEGIN PRIVATE KEY-----\n...").
SECRET_CONTENT = re.compile(
    rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----"
    rb"|AGE-SECRET-KEY-1"
    rb"|\Aage-encryption\.org/v1\n"
    rb"|-----BEGIN AGE ENCRYPTED FILE-----"
    rb"|client-key-data:"
)


def _spec(patterns: Iterable[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(list(patterns))


@dataclass(frozen=True)
class SecretFileRules:
    """The rules above, with a configuration's additions and opt-ins."""

    names: pathspec.GitIgnoreSpec
    allowed: pathspec.GitIgnoreSpec

    @classmethod
    def from_settings(cls, settings: KnowledgeSettings) -> SecretFileRules:
        return cls.build(extra=settings.secret_files_extra, allow=settings.secret_files_allow)

    @classmethod
    def build(cls, *, extra: Sequence[str] = (), allow: Sequence[str] = ()) -> SecretFileRules:
        return cls(names=_spec([*SECRET_NAME_PATTERNS, *extra]), allowed=_spec(allow))

    def opted_in(self, rel: str) -> bool:
        """Whether the configuration names this file for indexing whatever it holds."""
        return bool(self.allowed.match_file(rel))

    def secret_by_name(self, rel: str) -> bool:
        """`rel` (a path inside a root, `/`-separated) is secret-bearing by its name."""
        return bool(self.names.match_file(rel)) and not self.opted_in(rel)

    def secret_by_content(self, rel: str, data: bytes) -> bool:
        """`data` (the file's bytes) holds a key, an identity or a vault."""
        return SECRET_CONTENT.search(data) is not None and not self.opted_in(rel)
