"""`GET /api/chunks/{id}`: a scry result's whole chunk and its neighbours, through the real
app: contract, bounds, scopes and scrubbing (the MCP `scry_detail` tool reads it here from
`patina mcp`)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.bootstrap import open_resources
from service.knowledge.embedder import Embedder
from service.settings import Settings
from service.tokens import TokenRecord, TokenStore, digest
from service.transport.connection import ConnectionInfo, PeerCred
from tests.support.asgi import client_factory

from .conftest import ApiFactory, index_dir

pytestmark = pytest.mark.anyio


async def _chunk_id(client: httpx.AsyncClient, query: str) -> int:
    response = await client.post("/api/scry", json={"query": query})
    assert response.status_code == 200, response.text
    return int(response.json()["results"][0]["id"])


async def test_a_chunk_with_its_neighbours_in_file_order(
    api_for: ApiFactory, indexed: Settings
) -> None:
    async with api_for(indexed) as (_resources, client):
        chunk_id = await _chunk_id(client, "Rolling back previous image tag")
        bare = await client.get(f"/api/chunks/{chunk_id}")
        around = await client.get(f"/api/chunks/{chunk_id}", params={"neighbours": 5})
    assert bare.status_code == 200
    body = bare.json()
    assert body["chunk"]["id"] == chunk_id
    assert body["chunk"]["path"] == "docs/deploy.md"
    assert "press redeploy" in body["chunk"]["content"]
    assert body["before"] == body["after"] == []
    assert bare.headers["x-content-type-options"] == "nosniff"
    wide = around.json()
    # The file has three chunks: one before it, one after; asking for five gets those.
    assert [v["start_line"] for v in wide["before"]] == [1]
    assert [v["start_line"] for v in wide["after"]] == [14]
    assert "Migrations run" in wide["after"][0]["content"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/chunks/999999", 404),
        ("/api/chunks/0", 422),
        ("/api/chunks/abc", 422),
        ("/api/chunks/1?neighbours=6", 422),
        ("/api/chunks/1?neighbours=-1", 422),
    ],
)
async def test_bad_ids_and_bounds_get_clear_errors(
    api_for: ApiFactory, indexed: Settings, path: str, status: int
) -> None:
    async with api_for(indexed) as (_resources, client):
        response = await client.get(path)
        after = await client.get("/health")
    assert response.status_code == status
    assert "error" in response.json()
    assert after.status_code == 200


async def test_scope_scry_is_needed_and_held_values_are_scrubbed(
    indexed: Settings, embedder: Embedder
) -> None:
    root = Path(str(indexed.knowledge.roots[0]))
    planted = root / "notes" / "token.md"
    value = "tw-chunk-detail-7f3e21c9a0"
    planted.write_text(f"# Token\n\nThe staging token is {value}.\n")
    index_dir(indexed, embedder, root)
    tokens = TokenStore(
        [
            TokenRecord("indexer", digest("pt_index-only-1"), frozenset({"index"})),
            TokenRecord("reader", digest("pt_scry-1"), frozenset({"scry"})),
        ]
    )
    owner = ConnectionInfo("uds", PeerCred(pid=7, uid=os.getuid(), gid=os.getgid()))
    async with open_resources(indexed, tokens=tokens, embedder=embedder) as resources:
        resources.broker.replace({"STAGING_TOKEN": value})
        factory = client_factory(create_app(resources))
        async with factory(owner) as client:
            chunk_id = await _chunk_id(client, "staging token")
            shown = await client.get(f"/api/chunks/{chunk_id}")
        async with factory(ConnectionInfo("tcp")) as tcp:
            refused = await tcp.get(
                f"/api/chunks/{chunk_id}", headers={"Authorization": "Bearer pt_index-only-1"}
            )
            reader = await tcp.get(
                f"/api/chunks/{chunk_id}", headers={"Authorization": "Bearer pt_scry-1"}
            )
    assert shown.status_code == 200
    assert value not in shown.text
    assert "${secret:STAGING_TOKEN}" in shown.json()["chunk"]["content"]
    assert refused.status_code == 403
    assert reader.status_code == 200
    assert value not in reader.text
