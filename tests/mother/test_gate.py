"""The fan-out to mother nodes runs under the core's concurrency gate."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.bootstrap import open_resources
from service.settings import load_settings
from service.transport.connection import ConnectionInfo, PeerCred, with_connection

SILENT_TIMEOUT_MS = 1500


@pytest.mark.anyio
async def test_federated_scry_holds_a_gate_slot_until_its_nodes_answer(short_tmp: Path) -> None:
    # A mother on a Unix socket that accepts and never answers keeps the fan-out busy.
    silent_path = short_tmp / "silent.sock"
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(silent_path))
    silent.listen(8)
    settings = load_settings(
        home=short_tmp / "home",
        knowledge={"enabled": False},
        max_concurrent_queries=1,
        mothers=[
            {"name": "silent", "url": f"unix://{silent_path}", "timeout_ms": SILENT_TIMEOUT_MS}
        ],
    )
    try:
        async with open_resources(settings) as resources:
            app = with_connection(
                create_app(resources), ConnectionInfo("uds", peer=PeerCred(1, 0, 0))
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                body = {"query": "anything", "federate": True}
                first = asyncio.create_task(client.post("/api/scry", json=body))
                while resources.queries.gate.in_use == 0:
                    await asyncio.sleep(0.005)
                second = await client.post("/api/scry", json=body)
                assert second.status_code == 503
                assert second.json() == {"error": "server busy, retry shortly"}
                answer = (await first).json()
            assert answer["nodes"] == [
                {
                    "node": "silent",
                    "status": "timeout",
                    "latency_ms": answer["nodes"][0]["latency_ms"],
                    "count": 0,
                    "error": f"no answer within {SILENT_TIMEOUT_MS} ms",
                }
            ]
            assert answer["results"] == []
            assert resources.queries.gate.in_use == 0
    finally:
        silent.close()
