"""No scry answer carries a value the secrets broker holds: a value planted in an indexed
file and pushed to the broker is replaced, in every mode and every field, by a placeholder
that names the secret only to a caller allowed to read it. (Real nodes over UDS, TLS and
federation: tests/mother/test_federation.py.)"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.app import create_admin_app, create_app
from service.bootstrap import open_resources
from service.knowledge.embedder import Embedder
from service.knowledge.scry import scrub_answer
from service.knowledge.scry_models import NodeStatus, ScryResponse, ScryResult
from service.principal import LOCAL_SCOPES, Principal
from service.resources import Resources
from service.secrets.answers import REDACTED, AnswerScrubber, CompiledValues
from service.settings import Settings, load_settings
from service.tokens import TokenRecord, TokenStore, digest
from service.transport.connection import ConnectionInfo, PeerCred
from tests.support.asgi import client_factory

from .conftest import index_dir, write_corpus

pytestmark = pytest.mark.anyio

TRIPWIRE = "tw-scry-5e1b7c0a9f42"
OTHER_TRIPWIRE = "tw-scry-other-84d2aa17"
B64 = base64.b64encode(TRIPWIRE.encode()).decode()
PLANTED = {
    "notes/ops.md": f"# Ops notes\n\nThe deploy key was pasted here: {TRIPWIRE}\n"
    f"and its base64 too: {B64}\n",
    # The value is the whole path component: paths are scrubbed like content.
    f"keys/{OTHER_TRIPWIRE}.txt": "rotation schedule for the deploy key\n",
}
OWNER = ConnectionInfo("uds", PeerCred(pid=7, uid=os.getuid(), gid=os.getgid()))
READS_OPS = 61001  # a local peer whose allowlist names OPS_KEY only
PEER = ConnectionInfo("uds", PeerCred(pid=8, uid=READS_OPS, gid=READS_OPS))
TCP = ConnectionInfo("tcp")
TOKEN = "pt_scry-scrub-token-0123456789"
MODES = ("hybrid", "lexical", "semantic")


@pytest.fixture
async def resources(tmp_path: Path, embedder: Embedder) -> AsyncIterator[Resources]:
    corpus = write_corpus(tmp_path / "ops", PLANTED)
    consumers = tmp_path / "consumers.toml"
    consumers.write_text(f'[[consumers]]\nuid = {READS_OPS}\nallow = ["OPS_KEY"]\n')
    settings: Settings = load_settings(
        home=tmp_path / "home",
        knowledge={"roots": [str(corpus)]},
        secrets={"consumers_file": consumers, "disable_core_dumps": False},
    )
    index_dir(settings, embedder, corpus)
    tokens = TokenStore([TokenRecord("reader", digest(TOKEN), frozenset({"scry"}))])
    async with open_resources(settings, tokens=tokens, embedder=embedder) as res:
        yield res


async def _scry(resources: Resources, conn: ConnectionInfo, mode: str) -> str:
    headers = {"Authorization": f"Bearer {TOKEN}"} if conn.transport == "tcp" else {}
    async with client_factory(create_app(resources))(conn) as client:
        response = await client.post(
            "/api/scry", json={"query": "deploy key pasted", "mode": mode}, headers=headers
        )
    assert response.status_code == 200, response.text
    return response.text


async def test_a_planted_value_is_scrubbed_in_every_mode_and_field(resources: Resources) -> None:
    resources.broker.replace({"OPS_KEY": TRIPWIRE, "OTHER_KEY": OTHER_TRIPWIRE})
    for mode in MODES:
        owner = await _scry(resources, OWNER, mode)
        peer = await _scry(resources, PEER, mode)
        tcp = await _scry(resources, TCP, mode)
        for text in (owner, peer, tcp):
            assert TRIPWIRE not in text
            assert B64 not in text
            assert OTHER_TRIPWIRE not in text
        # The owner reads everything: each value becomes the reference `secrets run` takes
        # (the value and its base64 in the note; the other value in the file's path, which
        # lexical search does not find for these words).
        assert owner.count("${secret:OPS_KEY}") == 2
        assert ("${secret:OTHER_KEY}" in owner) == (mode != "lexical")
        # A caller allowed one secret sees its name, and a marker for the other.
        assert peer.count("${secret:OPS_KEY}") == 2
        assert "OTHER_KEY" not in peer
        assert (REDACTED in peer) == (mode != "lexical")
        # A TCP token without an allowlist entry learns no name at all.
        assert "OPS_KEY" not in tcp
        assert "OTHER_KEY" not in tcp
        assert tcp.count(REDACTED) == (2 if mode == "lexical" else 4)  # path and source_id


async def test_the_scrubber_follows_pushes_and_clears(resources: Resources) -> None:
    assert TRIPWIRE in await _scry(resources, OWNER, "lexical")  # not held: shown as is
    resources.broker.replace({"OPS_KEY": TRIPWIRE})
    assert TRIPWIRE not in await _scry(resources, OWNER, "lexical")
    resources.broker.replace({"SOMETHING_ELSE": "unrelated-value-42"})
    assert TRIPWIRE in await _scry(resources, OWNER, "lexical")
    resources.broker.replace({"OPS_KEY": TRIPWIRE})
    resources.broker.clear()
    assert TRIPWIRE in await _scry(resources, OWNER, "lexical")


async def test_a_push_through_the_admin_socket_takes_effect_at_once(
    resources: Resources,
) -> None:
    admin = client_factory(create_admin_app(resources))
    async with admin(ConnectionInfo("admin", OWNER.peer)) as client:
        pushed = await client.put("/admin/secrets", json={"secrets": {"OPS_KEY": TRIPWIRE}})
    assert pushed.status_code == 200
    assert TRIPWIRE not in await _scry(resources, OWNER, "hybrid")


def _owner() -> Principal:
    return Principal(transport="uds", name="uid:1", scopes=LOCAL_SCOPES, uid=1)


def test_the_answer_scrubber_leaves_clean_texts_alone_and_picks_placeholders() -> None:
    allowed = {"MINE"}
    scrubber = AnswerScrubber(lambda caller, name: name in allowed)
    texts = ["nothing here", "also nothing"]
    assert scrubber.scrub(texts, _owner()) is texts  # no set: the same list back
    scrubber.install(CompiledValues.of({"MINE": b"mine-0123456", "THEIRS": b"theirs-98765"}))
    assert scrubber.scrub(texts, _owner()) is texts  # no value in them: the same list
    hex_form = b"theirs-98765".hex()
    scrubbed = scrubber.scrub(["a mine-0123456 b", f"c {hex_form} d", "e"], _owner())
    assert scrubbed == ["a ${secret:MINE} b", f"c {REDACTED} d", "e"]
    # Text that merely looks like a placeholder, or like a marker, is not touched.
    lookalike = "${secret:THEIRS} \x00deadbeef:THEIRS\x00 and mine-0123456"
    assert scrubber.scrub([lookalike], _owner()) == [
        "${secret:THEIRS} \x00deadbeef:THEIRS\x00 and ${secret:MINE}"
    ]
    assert "theirs" not in repr(scrubber)


class _WithSnippet(ScryResult):
    snippet: str = ""


class _Values:
    def scrub(self, texts: list[str], caller: Principal) -> list[str]:
        return [text.replace("VALUE", "[x]") for text in texts]


def test_every_text_field_of_an_answer_is_scrubbed_even_one_added_later() -> None:
    result = _WithSnippet(
        id=1,
        content="c VALUE",
        score=1.0,
        event_type="e",
        source_id="s VALUE",
        timestamp="t",
        repo="r",
        path="p/VALUE.txt",
        start_line=1,
        end_line=2,
        kind="k",
        modes=["lexical"],
        snippet="…VALUE…",
    )
    node = NodeStatus(node="b", status="error", latency_ms=1.0, error="said VALUE")
    answer = ScryResponse(results=[result], count=1, mode="hybrid", nodes=[node])
    scrubbed = scrub_answer(answer, _Values(), _owner())
    assert "VALUE" not in scrubbed.model_dump_json()
    assert scrubbed.results[0].snippet == "…[x]…"  # type: ignore[attr-defined]
    assert scrubbed.nodes is not None
    assert scrubbed.nodes[0].error == "said [x]"
