"""Who may read which secret: the consumers file (TOML) and its default.

```toml
owner_reads_all = true          # the service's own uid on the local socket reads every secret

[[consumers]]
uid = 1001                      # a local socket peer (SO_PEERCRED uid)
scopes = ["read", "list"]       # of: read (values), list (names), cache (session cache)
allow = ["GITHUB_TOKEN", "AWS_*"]

[[consumers]]
token = "ci"                    # a TCP caller by its token's name
allow = ["DEPLOY_*"]

[[consumers]]
subject = "CN=agent-1"          # a mutual-TLS client by its certificate subject (RFC 4514)
allow = ["*"]
```

Entries match in file order (first match wins); an entry may name one of uid, token or
subject, or token and subject together. A caller on a project socket (remo's per-project
sockets, declared in settings) is governed by its project's allowlist alone. Patterns are
exact names or simple globs (`*`, `?`).
Without an entry: the local socket owner reads all (unless `owner_reads_all = false`);
everyone else may use only their own session cache. TCP tokens read nothing by default.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509

from service.principal import Principal
from service.subjects import parse_subject, same_subject

VERB_READ = "read"
VERB_LIST = "list"
VERB_CACHE = "cache"
VERBS = frozenset({VERB_READ, VERB_LIST, VERB_CACHE})
_PATTERN = re.compile(r"[A-Za-z0-9_*?]{1,128}")
_ENTRY_KEYS = {"uid", "token", "subject", "scopes", "allow", "name"}


class PolicyError(ValueError):
    """The consumers file is invalid; the message says where and why."""


@dataclass(frozen=True)
class Consumer:
    """One entry of the consumers file (or the built-in owner/default entries)."""

    label: str
    scopes: frozenset[str]
    allow: tuple[str, ...]
    uid: int | None = None
    token: str | None = None
    subject: x509.Name | None = None  # compared as a name, never as a string

    def matches(self, principal: Principal) -> bool:
        if self.uid is not None:
            return principal.transport == "uds" and principal.uid == self.uid
        if self.token is not None and principal.token_name != self.token:
            return False
        if self.subject is not None and not same_subject(principal.cert_subject, self.subject):
            return False
        return self.token is not None or self.subject is not None

    def allows(self, name: str) -> bool:
        return "*" in self.allow or any(fnmatch.fnmatchcase(name, p) for p in self.allow)


_NOBODY = Consumer(label="default", scopes=frozenset({VERB_CACHE}), allow=())


def project_consumer(name: str, allowlist: list[str]) -> Consumer:
    """A project socket's entry: read and list the allowlisted names, nothing else."""
    return Consumer(
        label=f"project:{name}", scopes=frozenset({VERB_READ, VERB_LIST}), allow=tuple(allowlist)
    )


@dataclass(frozen=True)
class Policy:
    """An immutable policy; reloads swap in a whole new one."""

    consumers: tuple[Consumer, ...]
    owner_uid: int
    owner_reads_all: bool = True
    source: str = "default"
    # Project sockets by name (from settings, kept across reloads of the consumers file).
    projects: Mapping[str, Consumer] = field(default_factory=dict)

    def consumer_for(self, principal: Principal) -> Consumer:
        """The entry that governs `principal` (the default entry when none matches)."""
        if principal.project is not None:
            # Never the consumers file: a project is exactly its allowlist.
            return self.projects.get(principal.project, _NOBODY)
        for consumer in self.consumers:
            if consumer.matches(principal):
                return consumer
        if (
            self.owner_reads_all
            and principal.transport == "uds"
            and principal.uid == self.owner_uid
        ):
            return self._owner
        return _NOBODY

    @cached_property
    def _owner(self) -> Consumer:
        # Built once per policy: the owner's reads ask for it on every request.
        return Consumer(label="owner", scopes=VERBS, allow=("*",), uid=self.owner_uid)

    def may(self, principal: Principal, verb: str) -> bool:
        return verb in self.consumer_for(principal).scopes

    def may_read(self, principal: Principal, name: str) -> bool:
        consumer = self.consumer_for(principal)
        return VERB_READ in consumer.scopes and consumer.allows(name)

    def readable(self, principal: Principal, names: list[str]) -> list[str]:
        """The subset of `names` the principal may read (empty without the list scope)."""
        consumer = self.consumer_for(principal)
        if VERB_LIST not in consumer.scopes or VERB_READ not in consumer.scopes:
            return []
        return [name for name in names if consumer.allows(name)]


def default_policy(owner_uid: int | None = None) -> Policy:
    """The policy without a consumers file: the owner reads all, nobody else anything."""
    return Policy(consumers=(), owner_uid=os.getuid() if owner_uid is None else owner_uid)


def load_policy(path: Path, *, owner_uid: int | None = None) -> Policy:
    """Parse a consumers file, or raise PolicyError naming the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: not valid TOML ({exc})") from None
    return parse_policy(
        data, owner_uid=os.getuid() if owner_uid is None else owner_uid, source=str(path)
    )


def parse_policy(data: dict[str, Any], *, owner_uid: int, source: str) -> Policy:
    """Build a Policy from parsed TOML (see the module docstring for the format)."""
    unknown = set(data) - {"owner_reads_all", "consumers"}
    if unknown:
        raise PolicyError(f"{source}: unknown top-level keys {sorted(unknown)}")
    owner_reads_all = data.get("owner_reads_all", True)
    if not isinstance(owner_reads_all, bool):
        raise PolicyError(f"{source}: owner_reads_all must be true or false")
    entries = data.get("consumers", [])
    if not isinstance(entries, list):
        raise PolicyError(f"{source}: consumers must be an array of tables ([[consumers]])")
    consumers = tuple(
        _consumer(entry, f"{source}: consumers[{i}]") for i, entry in enumerate(entries)
    )
    return Policy(
        consumers=consumers, owner_uid=owner_uid, owner_reads_all=owner_reads_all, source=source
    )


def _consumer(entry: Any, where: str) -> Consumer:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where}: must be a table")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
    uid, token, subject = entry.get("uid"), entry.get("token"), entry.get("subject")
    if uid is not None and (not isinstance(uid, int) or isinstance(uid, bool) or uid < 0):
        raise PolicyError(f"{where}: uid must be a non-negative integer")
    for key, value in (("token", token), ("subject", subject)):
        if value is not None and (not isinstance(value, str) or not value):
            raise PolicyError(f"{where}: {key} must be a non-empty string")
    if uid is None and token is None and subject is None:
        raise PolicyError(f"{where}: needs one of uid, token or subject")
    if uid is not None and (token is not None or subject is not None):
        raise PolicyError(f"{where}: uid cannot be combined with token or subject")
    scopes = entry.get("scopes", sorted(VERBS))
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise PolicyError(f"{where}: scopes must be a list of strings")
    bad = set(scopes) - VERBS
    if bad:
        raise PolicyError(f"{where}: unknown scopes {sorted(bad)} (known: {sorted(VERBS)})")
    allow = entry.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(p, str) for p in allow):
        raise PolicyError(f"{where}: allow must be a list of strings")
    for pattern in allow:
        if not _PATTERN.fullmatch(pattern):
            raise PolicyError(
                f"{where}: allow pattern {pattern!r} may hold only A-Z a-z 0-9 _ * ? (1-128)"
            )
    subject_name = None
    if subject is not None:
        try:
            subject_name = parse_subject(subject)
        except ValueError as exc:
            raise PolicyError(f"{where}: subject: {exc}") from None
    label = entry.get("name")
    if label is None:
        label = (
            f"uid:{uid}" if uid is not None else f"token:{token}" if token else f"subject:{subject}"
        )
    return Consumer(
        label=str(label),
        scopes=frozenset(scopes),
        allow=tuple(allow),
        uid=uid,
        token=token,
        subject=subject_name,
    )
