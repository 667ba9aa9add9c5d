"""Fixtures for the MCP tests: the knowledge corpus with a tripwire planted in it, the
same value held by the secrets broker, and an MCP client session from the SDK that talks to
the real public app (hardening middleware, authentication and all) as a chosen caller."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from service.app import create_app
from service.bootstrap import open_resources
from service.devcerts import DevCertFiles, write_dev_certs
from service.fileio import write_private
from service.knowledge.embedder import Embedder
from service.resources import Resources
from service.settings import Settings, load_settings
from service.tokens import TokenRecord, TokenStore, append_to_tokens_file, digest
from service.transport.connection import ConnectionInfo, PeerCred, with_connection
from tests.knowledge.conftest import CORPUS, embedder, index_dir, write_corpus
from tests.support.process import PATINA, ServiceProcess, free_port, short_tmp_dir, uds_client

__all__ = ["embedder"]

# Held by the broker as DEPLOY_KEY and pasted into an indexed file: no tool answer, error,
# log line or audit record may ever carry it.
TRIPWIRE = "tw-mcp-9d41c07be25a"
TRIPWIRE_B64 = base64.b64encode(TRIPWIRE.encode()).decode()
PLANTED = {
    **CORPUS,
    "notes/ops.md": f"# Ops notes\n\nThe deploy key was pasted here: {TRIPWIRE}\n"
    f"and its base64 too: {TRIPWIRE_B64}\n",
}
SECRETS = {"DEPLOY_KEY": TRIPWIRE, "OTHER_KEY": "tw-mcp-other-51aa03d7c2", "PIN": "482"}
OWNER = ConnectionInfo("uds", PeerCred(pid=7, uid=os.getuid(), gid=os.getgid()))
TCP = ConnectionInfo("tcp")
SCRY_ONLY_TOKEN = "pt_mcp-scry-only-0b7e44d1c9"
FULL_TOKEN = "pt_mcp-full-3c2f9a81e6"
TOKENS = TokenStore(
    [
        TokenRecord("scry-only", digest(SCRY_ONLY_TOKEN), frozenset({"scry"})),
        TokenRecord("full", digest(FULL_TOKEN), frozenset({"scry", "index", "secrets"})),
    ]
)
MCP_URL = "http://patina.local/mcp"


def mcp_settings(home: Path, corpus: Path, **overrides: object) -> Settings:
    return load_settings(
        home=home,
        knowledge={"roots": [str(corpus)]},
        secrets={"disable_core_dumps": False},
        **overrides,
    )


@pytest.fixture
def indexed(tmp_path: Path, embedder: Embedder) -> Settings:
    corpus = write_corpus(tmp_path / "shop", PLANTED)
    settings = mcp_settings(tmp_path / "home", corpus)
    index_dir(settings, embedder, corpus)
    return settings


@asynccontextmanager
async def open_service(settings: Settings, embedder: Embedder) -> AsyncIterator[Resources]:
    async with open_resources(settings, tokens=TOKENS, embedder=embedder) as resources:
        resources.broker.replace(dict(SECRETS))
        yield resources


@pytest.fixture
async def resources(indexed: Settings, embedder: Embedder) -> AsyncIterator[Resources]:
    async with open_service(indexed, embedder) as res:
        yield res


def http_client(
    resources: Resources, conn: ConnectionInfo, token: str | None
) -> httpx2.AsyncClient:
    """An HTTP client that reaches the public app as `conn` (a listener would tag it so)."""
    app = with_connection(create_app(resources), conn)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://patina.local", headers=headers
    )


@asynccontextmanager
async def mcp_session(
    resources: Resources, conn: ConnectionInfo = OWNER, token: str | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized MCP session of the SDK's client over Streamable HTTP at `/mcp`."""
    async with (
        http_client(resources, conn, token) as client,
        streamable_http_client(MCP_URL, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


SessionFactory = Callable[..., AbstractAsyncContextManager[ClientSession]]


# --- a real `patina serve` on its Unix socket and TLS port -------------------------------


@dataclass
class LiveService:
    """A running service over the planted corpus, holding SECRETS, with one scry-only
    token file (for TLS) and the dev CA."""

    process: ServiceProcess
    port: int
    certs: DevCertFiles
    scry_token_file: Path
    full_token_file: Path

    @property
    def home(self) -> Path:
        return self.process.home

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def texts_written(self) -> str:
        """The service's log and every file it wrote (audit included)."""
        parts = [self.process.log()]
        for path in sorted((self.home / "data").rglob("*")):
            if path.is_file() and path.suffix in {".jsonl", ".log", ".json", ".toml"}:
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


@pytest.fixture(scope="session")
def live(embedder: Embedder) -> Iterator[LiveService]:
    """Started once for the MCP tests that need real sockets (it loads the model)."""
    base = short_tmp_dir("mcp")
    try:
        corpus = write_corpus(base / "shop", PLANTED)
        home = base / "home"
        settings = load_settings(home=home, knowledge={"roots": [str(corpus)]})
        index_dir(settings, embedder, corpus)
        certs = write_dev_certs(base / "certs")
        tokens_file = base / "tokens.toml"
        append_to_tokens_file(tokens_file, "scry-only", SCRY_ONLY_TOKEN, ["scry"])
        append_to_tokens_file(tokens_file, "full", FULL_TOKEN, ["scry", "index", "secrets"])
        scry_token_file = base / "scry.token"
        full_token_file = base / "full.token"
        write_private(scry_token_file, f"{SCRY_ONLY_TOKEN}\n".encode())
        write_private(full_token_file, f"{FULL_TOKEN}\n".encode())
        port = free_port()
        args = [
            "--tcp",
            f"127.0.0.1:{port}",
            "--tls-cert",
            str(certs.server),
            "--tls-key",
            str(certs.server_key),
        ]
        env = {
            "PATINA_KNOWLEDGE__ENABLED": "true",
            "PATINA_KNOWLEDGE__ROOTS": json.dumps([str(corpus)]),
            "PATINA_TOKENS_FILE": str(tokens_file),
        }
        process = ServiceProcess(home=home, args=args, env=env).start(timeout=180)
        try:
            with uds_client(process.admin_socket) as admin:
                pushed = admin.put("/admin/secrets", json={"secrets": SECRETS})
            assert pushed.status_code == 200, pushed.text
            yield LiveService(process, port, certs, scry_token_file, full_token_file)
        finally:
            process.kill()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def stdio_params(live: LiveService, *args: str, **env: str) -> StdioServerParameters:
    """`patina mcp` as an agent spawns it, pointed at the live service's home."""
    return StdioServerParameters(
        command=PATINA, args=["mcp", *args], env={"PATINA_HOME": str(live.home), **env}
    )


@asynccontextmanager
async def stdio_session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with a spawned `patina mcp` (its stderr kept apart)."""
    with tempfile.TemporaryFile("w+") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
