"""Keeps the live Policy current: reload on SIGHUP (the runner calls `resources.sighup`,
which calls `reload`) and when the consumers file changes.

A change is noticed by polling the file's identity (inode, size, mtime), which also catches
an editor's or a ConfigMap's atomic rename. A reload that fails keeps the old policy, logs
why and records a `policy_reload` audit event with outcome `invalid`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from service.aio import cancel_and_wait
from service.fileio import FileIdentity, file_identity
from service.secrets.policy import (
    Consumer,
    Policy,
    PolicyError,
    default_policy,
    load_policy,
)

log = logging.getLogger("patina.secrets.policy")

ReloadListener = Callable[[str, str, str | None], None]  # outcome, source, reason


class PolicyHolder:
    """The current policy plus the means to reload it."""

    def __init__(
        self,
        path: Path | None,
        *,
        owner_uid: int | None = None,
        on_reload: ReloadListener | None = None,
        projects: Mapping[str, Consumer] | None = None,
    ) -> None:
        """`projects`: the project sockets' entries, part of every policy loaded."""
        self.path = path
        self.owner_uid = owner_uid
        self._projects = dict(projects or {})
        self._on_reload = on_reload
        self._seen: FileIdentity | None = None
        self._task: asyncio.Task[None] | None = None
        if path is None:
            self.current = self._with_projects(default_policy(owner_uid))
        else:
            # At start an unreadable or invalid file is fatal: PolicyError propagates.
            self._seen = file_identity(path)
            self.current = self._with_projects(load_policy(path, owner_uid=owner_uid))

    def _with_projects(self, policy: Policy) -> Policy:
        return dataclasses.replace(policy, projects=self._projects)

    def reload(self) -> bool:
        """Re-read the consumers file; keep the old policy when the new one is invalid."""
        if self.path is None:
            return True
        self._seen = file_identity(self.path)
        try:
            policy: Policy = load_policy(self.path, owner_uid=self.owner_uid)
        except PolicyError as exc:
            log.error(
                "consumers file invalid; keeping the previous policy",
                extra={"fields": {"reason": str(exc)}},
            )
            self._notify("invalid", str(exc))
            return False
        self.current = self._with_projects(policy)
        log.info(
            "consumers file reloaded",
            extra={"fields": {"path": str(self.path), "consumers": len(policy.consumers)}},
        )
        self._notify("ok", None)
        return True

    def check(self) -> None:
        """Reload when the file's identity changed since the last load."""
        if self.path is not None and file_identity(self.path) != self._seen:
            self.reload()

    def start(self, *, poll_secs: float) -> None:
        """Start polling the file for changes on the running loop."""
        if self.path is not None:
            self._task = asyncio.get_running_loop().create_task(self._poll(poll_secs))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _poll(self, poll_secs: float) -> None:
        while True:
            await asyncio.sleep(poll_secs)
            self.check()

    def _notify(self, outcome: str, reason: str | None) -> None:
        if self._on_reload is not None:
            self._on_reload(outcome, str(self.path), reason)
