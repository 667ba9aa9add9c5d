#!/usr/bin/env python3
"""Container health probe: GET /health over the service's public Unix socket.

Installed in the image as `patina-healthcheck` and used by the Dockerfile HEALTHCHECK, the
compose file and the Helm chart's probes. Standard library only: it runs every few seconds,
and `patina health` (the same check) imports the whole CLI and web stack, which costs seconds
of CPU per probe on a small machine. Exit 0 when the service answers {"status": "ok"}.

The socket is PATINA_SOCKET_PATH, else PATINA_RUN_DIR/serve.sock, else the first argument.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys

TIMEOUT_SECS = 3.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT_SECS)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT_SECS)
        sock.connect(self.socket_path)
        self.sock = sock


def socket_path(argv: list[str]) -> str:
    if len(argv) > 1:
        return argv[1]
    explicit = os.environ.get("PATINA_SOCKET_PATH")
    if explicit:
        return explicit
    return os.path.join(os.environ.get("PATINA_RUN_DIR", "/run/patina"), "serve.sock")


def main(argv: list[str]) -> int:
    path = socket_path(argv)
    conn = UnixHTTPConnection(path)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = response.read(4096)
    except OSError as exc:
        sys.stderr.write(f"unhealthy: {path}: {exc}\n")
        return 1
    finally:
        conn.close()
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        status = None
    if response.status != 200 or status != "ok":
        sys.stderr.write(f"unhealthy: {path} answered {response.status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
