"""A raw remo client for tests: NDJSON lines over a Unix socket, nothing of the service's."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class RemoClient:
    """One connection; `ask` sends one request line and reads one answer line."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")

    def __enter__(self) -> RemoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> dict[str, Any]:
        line = self.reader.readline()
        assert line.endswith(b"\n"), f"no answer line, got {line!r}"
        answer = json.loads(line)
        assert isinstance(answer, dict)
        return answer

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send_raw(json.dumps(request).encode() + b"\n")
        return self.read()

    def closed_by_server(self) -> bool:
        return self.reader.read() == b""


def ask(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """One request on a fresh connection."""
    with RemoClient(path) as client:
        return client.ask(request)
