"""The index does not go around the secrets allowlists: secret-bearing files and the
service's own directories are left out by default, reported, and indexed only when the
configuration names them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from service.app import create_app
from service.bootstrap import open_resources
from service.knowledge.embedder import Embedder
from service.knowledge.indexer import IndexReport
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.secret_files import SecretFileRules
from service.knowledge.service import IndexRun, KnowledgeService, index_path
from service.settings import Settings, load_settings
from service.tokens import TokenRecord, TokenStore, digest
from service.transport.connection import ConnectionInfo, with_connection

from .conftest import index_dir, write_corpus

STRIPE = "sk_live_tripwire51Hq0dEadBeef0123456789"
PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
    "tripwirePEMkey0123\n-----END PRIVATE KEY-----\n"
)
AGE_IDENTITY = "# created: 2026\nAGE-SECRET-KEY-1TRIPWIREQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n"
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBtripwirecert\n-----END CERTIFICATE-----\n"

# path -> content; each one holds a secret and must be left out.
SECRET_BEARING = {
    "app/prod.env": f"STRIPE_KEY={STRIPE}\n",
    ".env": f"STRIPE_KEY={STRIPE}\n",
    ".env.local": f"STRIPE_KEY={STRIPE}\n",
    "certs/server-key.pem": PRIVATE_KEY,
    "deploy/tls.key": PRIVATE_KEY,
    "home/.ssh/id_ed25519": PRIVATE_KEY,
    "notes/identity.txt": AGE_IDENTITY,
    "secrets/vault.age": "age-encryption.org/v1\n-> X25519 abc\ntripwire\n",
    "ci/github.token": STRIPE,
    ".netrc": f"machine api.example.com login ci password {STRIPE}\n",
    ".npmrc": f"//registry.npmjs.org/:_authToken={STRIPE}\n",
    ".pypirc": f"[pypi]\npassword = {STRIPE}\n",
    ".git-credentials": f"https://ci:{STRIPE}@example.com\n",
    "deploy/kubeconfig": f"apiVersion: v1\nkind: Config\nusers:\n- user:\n    token: {STRIPE}\n",
    "ops/.aws/credentials": f"[default]\naws_secret_access_key = {STRIPE}\n",
    "ops/service-account.json": '{"type": "service_account", "private_key": "'
    + PRIVATE_KEY.replace("\n", "\\n")
    + '"}\n',
}
ORDINARY = {
    "src/billing.py": "def charge(amount: int) -> None:\n    'Charge the card through Stripe.'\n",
    "certs/server.pem": CERTIFICATE,  # a certificate alone is public
    "docs/env.md": "# Environment\n\nSet STRIPE_KEY in app/prod.env, never in the code.\n",
}


def _project(root: Path) -> Path:
    return write_corpus(root, {**SECRET_BEARING, **ORDINARY})


def _index_bytes(settings: Settings) -> bytes:
    path = index_path(settings)
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_secret_bearing_files_are_left_out_and_reported(tmp_path: Path, embedder: Embedder) -> None:
    root = _project(tmp_path / "proj")
    settings = load_settings(home=tmp_path / "home", knowledge={"roots": [str(root)]})
    report = index_dir(settings, embedder, root)
    assert sorted(report.secret_files) == sorted(SECRET_BEARING)
    assert report.files_indexed == len(ORDINARY)
    stored = _index_bytes(settings)
    assert STRIPE.encode() not in stored
    assert b"tripwirePEMkey" not in stored
    assert b"AGE-SECRET-KEY-1" not in stored
    assert b"tripwirecert" in stored  # the certificate was indexed


def test_a_scry_and_index_token_cannot_read_a_secret_through_the_index(
    tmp_path: Path, embedder: Embedder
) -> None:
    """The reported attack: a TCP token with `scry` and `index` but no secret rights
    indexes app/prod.env and searches for the key."""
    root = _project(tmp_path / "proj")
    settings = load_settings(home=tmp_path / "home", knowledge={"roots": [str(root)]})
    token = "pt_scry-and-index-token-0123456789"
    tokens = TokenStore([TokenRecord("ci", digest(token), frozenset({"scry", "index"}))])

    async def attack() -> list[httpx.Response]:
        async with open_resources(settings, tokens=tokens, embedder=embedder) as resources:
            app = with_connection(create_app(resources), ConnectionInfo("tcp"))
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="https://patina.local"
            ) as client:
                indexed = await client.post("/api/index", json={"wait": True}, headers=headers)
                answers = [indexed]
                for query in ("STRIPE_KEY", "sk_live", "aws_secret_access_key", "PRIVATE KEY"):
                    for mode in ("lexical", "hybrid"):
                        answers.append(
                            await client.post(
                                "/api/scry",
                                json={"query": query, "mode": mode, "limit": 100},
                                headers=headers,
                            )
                        )
                return answers

    indexed, *answers = asyncio.run(attack())
    assert indexed.status_code == 200, indexed.text
    assert sorted(indexed.json()["reports"][0]["secret_files"]) == sorted(SECRET_BEARING)
    for answer in answers:
        assert answer.status_code == 200
        assert STRIPE not in answer.text
        assert "tripwirePEMkey" not in answer.text


def test_an_explicit_opt_in_indexes_a_file_and_extra_patterns_leave_more_out(
    tmp_path: Path, embedder: Embedder
) -> None:
    root = _project(tmp_path / "proj")
    (root / "config/app.secret").parent.mkdir()
    (root / "config/app.secret").write_text("password hunter2-tripwire\n")
    settings = load_settings(
        home=tmp_path / "home",
        knowledge={
            "roots": [str(root)],
            "secret_files_allow": ["docs/../.env.local", ".env.local"],
            "secret_files_extra": ["*.secret"],
        },
    )
    report = index_dir(settings, embedder, root)
    assert ".env.local" not in report.secret_files
    assert "config/app.secret" in report.secret_files
    assert STRIPE.encode() in _index_bytes(settings)  # .env.local's key, as asked
    assert b"hunter2-tripwire" not in _index_bytes(settings)


def test_a_secret_file_indexed_before_leaves_the_index(tmp_path: Path, embedder: Embedder) -> None:
    root = _project(tmp_path / "proj")
    knowledge = {"roots": [str(root)], "secret_files_allow": ["app/prod.env"]}
    before = load_settings(home=tmp_path / "home", knowledge=knowledge)
    index_dir(before, embedder, root)
    assert STRIPE.encode() in _index_bytes(before)
    now = load_settings(home=tmp_path / "home", knowledge={"roots": [str(root)]})
    report = index_dir(now, embedder, root)
    assert report.files_deleted == 1
    assert "app/prod.env" in report.secret_files


def test_the_services_own_directories_inside_a_root_are_never_indexed(
    tmp_path: Path, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "proj", ORDINARY)
    home = root / ".patina"
    secrets_dir = home / "secrets"
    secrets_dir.mkdir(parents=True)
    (secrets_dir / "notes.txt").write_text("vault notes tripwire-home-0042\n")
    (home / "run").mkdir()
    (home / "run" / "serve.token").write_text("pt_tripwire-service-token\n")
    # Even opted in by name, and reached by another path, the home stays out.
    settings = load_settings(
        home=home, knowledge={"roots": [str(root)], "secret_files_allow": ["**"]}
    )
    service = KnowledgeService(
        settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    try:
        report = _run_index(service, root)
    finally:
        service.close()
    assert ".patina/" in report.secret_files
    stored = _index_bytes(settings)
    assert b"tripwire-home-0042" not in stored
    assert b"pt_tripwire-service-token" not in stored


def _run_index(service: KnowledgeService, root: Path) -> IndexReport:
    """One run of the service's own indexing thread over `root`."""

    async def run() -> IndexRun:
        return await service.start_index([(root, root)], repo=None, git=False)

    finished = asyncio.run(run())
    assert finished.state == "succeeded", finished.error
    return finished.reports[0]


@pytest.mark.parametrize(
    ("rel", "secret"),
    [
        ("a/b/.env.production", True),
        ("x.env", True),
        ("environment.py", False),
        ("src/env.rs", False),
        ("id_rsa", True),
        ("id_rsa.pub", False),
        ("a/.kube/config", True),
        ("x/.aws/credentials", True),
        ("k8s/prod.kubeconfig", True),
        ("README.md", False),
    ],
)
def test_rules_by_name(rel: str, secret: bool) -> None:
    assert SecretFileRules.build().secret_by_name(rel) is secret
