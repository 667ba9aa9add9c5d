"""Silent TCP connections, as a pre-handshake flood makes them, and how to see which ones
the server closed."""

from __future__ import annotations

import errno
import resource
import select
import socket


def open_silent(port: int, count: int) -> list[socket.socket]:
    """`count` TCP connections to 127.0.0.1:`port` that never send a byte. connect() is not
    awaited: the flood outruns the listen backlog, as a real one does. The caller's own
    soft fd limit is raised to fit them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        result = sock.connect_ex(("127.0.0.1", port))
        assert result in (0, errno.EINPROGRESS), errno.errorcode.get(result)
        socks.append(sock)
    return socks


def _readable(sock: socket.socket) -> bool:
    # poll, not select: a flood's descriptors go past select's limit of 1024.
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed or reset this silent connection (it sent nothing)."""
    if not _readable(sock):
        return False
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
        return True
    except BlockingIOError:
        return False
