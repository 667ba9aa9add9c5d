"""How many connections the TCP listeners may hold, so that the Unix sockets never starve.

Every connection costs a file descriptor, and the process has RLIMIT_NOFILE of them. If a
flood from the network may take them all, accept() on the Unix sockets fails with EMFILE
and the machine's owner is locked out of /health, the secrets and the admin socket. So:

* at start the soft limit is raised to the hard one (what the system allows the process
  anyway; Go's runtime does the same);
* the TCP listeners together may hold no more than what is left after the descriptors
  already open and a reserve for the Unix sockets and the service's own files; a
  `max_connections` above that is lowered, with a warning saying why.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource

log = logging.getLogger("patina.transport")

# Kept free for Unix-socket callers (local users and the sidecar) and for what the service
# opens while it runs (index read connections, the audit file, a reloaded policy).
UNIX_RESERVE = 128
INTERNAL_RESERVE = 64
MIN_TCP_CONNECTIONS = 8


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def open_descriptors() -> int:
    """Descriptors this process holds now (an estimate where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return INTERNAL_RESERVE


def tcp_connection_cap(requested: int, *, tcp_listeners: int) -> int:
    """The per-listener cap for `tcp_listeners` TCP listeners, at most `requested`."""
    if tcp_listeners <= 0:
        return requested
    limit = raise_nofile_limit()
    if limit == resource.RLIM_INFINITY:
        return requested
    spare = limit - open_descriptors() - INTERNAL_RESERVE - UNIX_RESERVE
    each = max(spare // tcp_listeners, MIN_TCP_CONNECTIONS)
    if each < requested:
        log.warning(
            "TCP connections capped at %d per listener (RLIMIT_NOFILE %d): the Unix sockets "
            "keep %d descriptors; raise the limit (ulimit -n) to allow max_connections %d",
            each,
            limit,
            UNIX_RESERVE,
            requested,
        )
        return each
    return requested
