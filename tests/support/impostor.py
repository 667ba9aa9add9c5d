"""An attacker on the same host: another uid, in the sockets' group, that takes over the
service's socket paths and answers like the service, recording every byte it is sent.

It runs as a real separate process under another uid and gid (the tests run as root), with
the system's python3 and the standard library only: the attacker has no access to the
project's virtualenv. It reports on stdout, one JSON object per line.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ATTACKER_UID = 54321
ATTACKER_GID = 54321
SHARED_GID = 54320  # the sockets' group (socket_group), which the attacker belongs to
SYSTEM_PYTHON = "/usr/bin/python3"  # scripts/install-system-deps.sh installs it

SCRIPT = r"""
import json, os, socket, sys, threading

mode, paths = sys.argv[1], sys.argv[2:]
def say(**event):
    print(json.dumps(event), flush=True)

STATUS = json.dumps({"version": "0", "protocol_version": 1, "uptime_secs": 1,
    "boot_id": "impostor", "generation": 0, "loaded_at": None, "count": 0}).encode()

def answer(request):
    body = b"{}"
    if request.startswith(b"GET /admin/status"):
        body = STATUS
    elif request.startswith(b"PUT /admin/secrets"):
        body = b'{"generation": 1, "loaded_at": null, "count": 1}'
    elif request.startswith(b"GET /health"):
        body = b'{"status": "ok", "version": "0", "uptime_secs": 1}'
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"\r\n%s" % (len(body), body))

def serve(path, conn):
    conn.settimeout(2)
    data = b""
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                conn.sendall(answer(data))
    except OSError:
        pass
    say(event="received", path=path, data=data.decode("latin-1"))
    conn.close()

def listen(path, sock):
    while True:
        conn, _ = sock.accept()
        say(event="connected", path=path)
        threading.Thread(target=serve, args=(path, conn), daemon=True).start()

for path in paths:
    if mode == "takeover":
        try:
            os.unlink(path)
            say(event="unlinked", path=path)
        except OSError as exc:
            say(event="unlink_failed", path=path, errno=exc.errno)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(16)
    except OSError as exc:
        say(event="bind_failed", path=path, errno=exc.errno)
        continue
    say(event="bound", path=path)
    threading.Thread(target=listen, args=(path, sock), daemon=True).start()
say(event="ready")
sys.stdin.read()
"""


@dataclass
class Impostor:
    """The running attacker and what it reported."""

    proc: subprocess.Popen[bytes]
    events: list[dict[str, Any]] = field(default_factory=list)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["event"] == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(kind)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None and len(self.of(kind)) < count:
                break
            time.sleep(0.02)
        raise AssertionError(f"impostor: no {count} {kind!r} events; saw {self.events}")

    def received(self) -> str:
        """Everything any client sent to the impostor."""
        return "".join(e["data"] for e in self.of("received"))


@contextlib.contextmanager
def impostor(mode: str, paths: list[Path]) -> Iterator[Impostor]:
    """Run the attacker as ATTACKER_UID (groups: its own and SHARED_GID). `mode` is
    "takeover" (unlink each path, then bind it) or "bind" (bind where nothing is)."""
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, "-I", "-c", SCRIPT, mode, *map(str, paths)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        user=ATTACKER_UID,
        group=ATTACKER_GID,
        extra_groups=[SHARED_GID],
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    running = Impostor(proc)
    reader = threading.Thread(target=running._read, daemon=True)
    reader.start()
    try:
        running.wait_for("ready")
        yield running
    finally:
        proc.kill()
        proc.wait()
        reader.join(5)
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        assert proc.stdout is not None
        proc.stdout.close()


def share_with_group(path: Path, mode: int) -> None:
    """chown :SHARED_GID and chmod `mode` (what an admin does for a shared socket dir)."""
    os.chown(path, -1, SHARED_GID)
    os.chmod(path, mode)
