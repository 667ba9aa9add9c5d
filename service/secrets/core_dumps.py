"""Keep secret values out of core files and away from same-uid debuggers.

`RLIMIT_CORE` 0 stops the kernel writing a core file when the process crashes;
`PR_SET_DUMPABLE` 0 additionally makes /proc/<pid>/mem, environ and friends root-only and
refuses ptrace from other processes of the same uid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource

log = logging.getLogger("patina.secrets")

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def disable_core_dumps() -> bool:
    """Set RLIMIT_CORE to 0 and the process non-dumpable. True when both took effect."""
    ok = True
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError) as exc:
        ok = False
        log.warning("could not set RLIMIT_CORE to 0", extra={"fields": {"error": str(exc)}})
    libc = _libc()
    if libc is None or libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        ok = False
        log.warning("could not clear the dumpable flag (prctl PR_SET_DUMPABLE)")
    return ok


def is_dumpable() -> bool | None:
    """The process's dumpable flag, or None where prctl is unavailable."""
    libc = _libc()
    if libc is None:
        return None
    return bool(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
