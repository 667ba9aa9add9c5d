#!/usr/bin/env python3
"""Container health probes, installed in the image as `patina-healthcheck`.

    patina-healthcheck [SOCKET]
        GET /health over the service's public Unix socket (SOCKET, else PATINA_SOCKET_PATH,
        else PATINA_RUN_DIR/serve.sock); standard library only.
    patina-healthcheck sidecar --source SPEC [--identity FILE] --admin-socket PATH
        The sidecar's probe, `patina sidecar --check`: the source loads and the service holds
        the set pushed since it started.

They do what `patina health` and `patina sidecar --check` do, without loading the whole CLI
(which imports the web stack and the ONNX runtime: seconds of CPU per probe on a small
machine, and probes run every few seconds). Exit 0 when healthy.
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


def sidecar_check(argv: list[str]) -> int:
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="patina-healthcheck sidecar")
    parser.add_argument("--source", required=True)
    parser.add_argument("--identity", type=Path)
    parser.add_argument("--admin-socket", type=Path, required=True)
    args = parser.parse_args(argv)
    # Only the sidecar's own modules: a fraction of a second to import.
    from service.agent.sidecar import check
    from service.agent.sources import SidecarSource

    try:
        summary = check(SidecarSource.parse(args.source, identity=args.identity), args.admin_socket)
    except Exception as exc:  # any failure is "unhealthy"; the message names no secret
        sys.stderr.write(f"unhealthy: {type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(f"{summary}\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "sidecar":
        return sidecar_check(argv[2:])
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
