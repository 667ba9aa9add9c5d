"""A cluster of real `patina serve` processes on loopback, over mutual TLS with the dev CA.

Node `a` is the one tests ask; `b`, `c` and `d` are its mothers (d is killed by one test
and used by no other). `a` also lists `b-wrong` (b with a wrong token), `c-local` (c over
its Unix socket) and `silent` (a socket that accepts and never answers). `b` lists `a`, so
A -> B -> A is configured. Starting a node loads the model (seconds), so the cluster is
shared by the module's tests; each test reads it and changes nothing another test reads.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from service.devcerts import DevCertFiles, write_dev_certs
from service.fileio import write_private
from tests.support.process import PATINA, ServiceProcess, free_port, short_tmp_dir

# Tripwires: each node's bearer token; none may appear in a log, an answer or a file the
# services write.
TOKENS = {name: f"pt_tripwire-mother-{name}-5b1d0c9e" for name in ("a", "b", "c", "d")}
WRONG_TOKEN = "pt_tripwire-mother-wrong-77e2f1aa"

SILENT_TIMEOUT_MS = 800
KILLED_TIMEOUT_MS = 3000
NODE_TIMEOUT_MS = 10_000  # generous: live nodes must never time out on a loaded machine

# Tripwires held by a node's secrets broker (pushed by the test that uses them) and planted
# in indexed files: no scry answer may carry them. A's value is in a's and b's corpus (a
# scrubs its own results and b's), b's only in b's (b scrubs what it answers a).
HELD_BY_A = "tw-held-by-a-6c0f2e91d7"
HELD_BY_B = "tw-held-by-b-3a9d5c4417"
PLANTED_QUERY = "staging rotation keys pasted by mistake"
PLANTED = {
    "a": f"# Staging rotation\n\nThe staging keys pasted by mistake: {HELD_BY_A}, and "
    f"in base64 {base64.b64encode(HELD_BY_A.encode()).decode()}.\n",
    "b": f"# Staging rotation keys\n\nPasted by mistake: {HELD_BY_A} and {HELD_BY_B}.\n",
}

# Each node's corpus has a rollback document in its own words (so one question finds a
# chunk on every node) and a document found nowhere else.
CORPORA: dict[str, dict[str, str]] = {
    "a": {
        "docs/rollback.md": "# Rolling back alpha\n\nTo roll back a broken alpha release, "
        "pick the previous image tag in the dashboard and redeploy it.\n",
        "notes/espresso.txt": "The espresso machine on the third floor is descaled every "
        "Friday before lunch.\n",
        "notes/staging.md": PLANTED["a"],
    },
    "b": {
        "docs/rollback.md": "# Reverting beta\n\nWhen a beta release breaks, roll it back "
        "with `beta-revert --to previous` and tell the on-call channel.\n",
        "src/quokka.py": "def quokka_census_total(islands: list[int]) -> int:\n"
        '    """Count the quokkas on every island."""\n    return sum(islands)\n',
        "notes/staging.md": PLANTED["b"],
    },
    "c": {
        "docs/rollback.md": "# Undoing a gamma release\n\nA faulty gamma release is rolled "
        "back by restoring the last good build from the artifact store.\n",
        "notes/bikes.txt": "Bicycles belong in the basement racks, never in the stairwell.\n",
    },
    "d": {
        "docs/rollback.md": "# Delta rollback\n\nRolling back a delta release means "
        "promoting the previous release candidate again.\n",
    },
}
# Indexed by a and b from the same directory: the same chunk on two nodes.
SHARED = {
    "glossary.md": "# Flux capacitor\n\nThe flux capacitor calibration constant is "
    "1.21 gigawatts.\n"
}


@dataclass
class Node:
    name: str
    home: Path
    port: int
    config: Path
    process: ServiceProcess

    def client(self) -> httpx.Client:
        return self.process.client(timeout=60)

    def scry(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        with self.client() as c:
            response = c.post("/api/scry", json=body, headers=headers or {})
        assert response.status_code == 200, response.text
        return response.json()

    def metrics(self) -> str:
        with self.client() as c:
            return c.get("/metrics").text


@dataclass
class Cluster:
    base: Path
    certs: DevCertFiles
    secrets: Path
    nodes: dict[str, Node] = field(default_factory=dict)
    silent_port: int = 0

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]


class SilentServer:
    """Accepts TCP connections and never sends a byte (nor completes a TLS handshake)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        # shutdown wakes the accept() blocked in the thread; close alone may not.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)
        for conn in self.held:
            conn.close()


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")} | env
    return subprocess.Popen(
        [PATINA, *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _toml(value: Any) -> str:
    return json.dumps(str(value))


def mother_toml(
    name: str,
    url: str,
    *,
    token_file: Path | None = None,
    certs: DevCertFiles | None = None,
    timeout_ms: int = NODE_TIMEOUT_MS,
) -> str:
    lines = ["[[mothers]]", f"name = {_toml(name)}", f"url = {_toml(url)}"]
    if token_file is not None:
        lines.append(f"token_file = {_toml(token_file)}")
    if certs is not None:
        lines += [
            f"ca_file = {_toml(certs.ca)}",
            f"client_cert = {_toml(certs.client)}",
            f"client_key = {_toml(certs.client_key)}",
        ]
    lines.append(f"timeout_ms = {timeout_ms}")
    return "\n".join(lines) + "\n"


def https(port: int) -> str:
    return f"https://127.0.0.1:{port}"


@contextlib.contextmanager
def start_cluster() -> Iterator[Cluster]:
    """Index, start and (on exit) kill every node."""
    base = short_tmp_dir("mo")
    certs = write_dev_certs(base / "certs")
    secrets = base / "secrets"
    for name, token in TOKENS.items():
        write_private(secrets / f"{name}.token", f"{token}\n".encode())
    write_private(secrets / "wrong.token", f"{WRONG_TOKEN}\n".encode())
    shared = write_files(base / "corpus" / "shared", SHARED)
    silent = SilentServer()
    cluster = Cluster(base=base, certs=certs, secrets=secrets, silent_port=silent.port)
    ports = {name: free_port() for name in CORPORA}
    homes = {name: base / name for name in CORPORA}

    mothers: dict[str, str] = {
        "a": "".join(
            [
                mother_toml("b", https(ports["b"]), token_file=secrets / "b.token", certs=certs),
                mother_toml("c", https(ports["c"]), token_file=secrets / "c.token", certs=certs),
                mother_toml(
                    "d",
                    https(ports["d"]),
                    token_file=secrets / "d.token",
                    certs=certs,
                    timeout_ms=KILLED_TIMEOUT_MS,
                ),
                mother_toml(
                    "b-wrong", https(ports["b"]), token_file=secrets / "wrong.token", certs=certs
                ),
                mother_toml("c-local", f"unix://{homes['c'] / 'run' / 'serve.sock'}"),
                mother_toml(
                    "silent",
                    https(silent.port),
                    token_file=secrets / "b.token",
                    certs=certs,
                    timeout_ms=SILENT_TIMEOUT_MS,
                ),
            ]
        ),
        "b": mother_toml("a", https(ports["a"]), token_file=secrets / "a.token", certs=certs),
    }
    try:
        indexing = []
        for name in CORPORA:
            corpus = write_files(base / "corpus" / name, CORPORA[name])
            config = base / f"{name}.toml"
            config.write_text(mothers.get(name, ""))
            # The CLI writes the index into the node's home before it starts (repositories
            # are named after the directories); a and b also index the shared directory.
            dirs = [corpus, shared] if name in ("a", "b") else [corpus]
            indexing.append(_spawn(["index", *map(str, dirs)], {"PATINA_HOME": str(homes[name])}))
            args = [
                "--config",
                str(config),
                "--tcp",
                f"127.0.0.1:{ports[name]}",
                "--tls-cert",
                str(certs.server),
                "--tls-key",
                str(certs.server_key),
                "--tls-client-ca",
                str(certs.ca),
            ]
            env = {"PATINA_SERVE_TOKEN": TOKENS[name], "PATINA_KNOWLEDGE__ENABLED": "true"}
            process = ServiceProcess(home=homes[name], args=args, env=env)
            cluster.nodes[name] = Node(name, homes[name], ports[name], config, process)
        for proc in indexing:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out.decode(errors="replace")
        # Start every node before waiting for any: their models load in parallel.
        for node in cluster.nodes.values():
            node.process.start(wait=False)
        for node in cluster.nodes.values():
            node.process.wait_ready(timeout=180)
        yield cluster
    finally:
        for node in cluster.nodes.values():
            node.process.kill()
        silent.close()
        shutil.rmtree(base, ignore_errors=True)
