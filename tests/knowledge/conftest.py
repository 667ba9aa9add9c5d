"""Fixtures for the knowledge tests: the real model (loaded once), a small real corpus,
and a service or API over an index built from it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.bootstrap import open_resources
from service.knowledge import store
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.indexer import Indexer, IndexReport
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.service import KnowledgeService, index_path
from service.resources import Resources
from service.settings import Settings, load_settings
from service.transport.connection import ConnectionInfo, PeerCred, with_connection

# A corpus where each chunk has one job in the tests: the paraphrase target shares no word
# with its query; the identifier exists only in its function.
CORPUS: dict[str, str] = {
    "docs/deploy.md": """# Deployment

Releases go out from the main branch through the pipeline.

## Rolling back

Pick the previous image tag in the release dashboard and press redeploy.

```bash
# not a heading: inside a fence
kubectl rollout undo deployment/web
```

## Database migrations

Migrations run before the new pods start; they must stay backwards compatible.
""",
    "notes/office.txt": """Kitchen rules

The espresso machine on the third floor gets descaled every Friday before lunch.
Please leave its drip tray empty.

Bicycles belong in the basement racks, never in the stairwell.
""",
    "src/retry.py": '''"""Retrying flaky network calls."""

import random


def compute_backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to sleep before retry number `attempt`, with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


class RetryBudget:
    """Stops retries once too many calls failed in a window."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def allow(self) -> bool:
        self.spent += 1
        return self.spent <= self.limit
''',
    "src/cache.rs": """use std::collections::HashMap;

/// A least-recently-used cache of parsed templates.
pub struct TemplateCache {
    entries: HashMap<String, String>,
}

pub fn render_invoice_pdf(order_id: u64) -> Vec<u8> {
    // Layout the invoice and return the PDF bytes.
    Vec::new()
}
""",
    "README.md": """# Widget shop

An online store for widgets. Customers pay by card; invoices are mailed as PDF.
""",
}


def write_corpus(root: Path, files: dict[str, str] | None = None) -> Path:
    for rel, text in (files or CORPUS).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real, verified model: loaded once for the whole session (it takes seconds)."""
    return Embedder.from_settings(KnowledgeSettings())


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "shop")


@pytest.fixture
def settings(tmp_path: Path, corpus: Path) -> Settings:
    return load_settings(home=tmp_path / "home", knowledge={"roots": [str(corpus)]})


def index_dir(settings: Settings, embedder: Embedder, root: Path, **kwargs: Any) -> IndexReport:
    """Index `root` as the CLI does: a direct writer on the index file."""
    conn = store.open_index(index_path(settings))
    try:
        return Indexer(conn, embedder, settings.knowledge).index(root, **kwargs)
    finally:
        conn.close()


@pytest.fixture
def indexed(settings: Settings, embedder: Embedder, corpus: Path) -> Settings:
    """Settings whose index holds the corpus."""
    index_dir(settings, embedder, corpus)
    return settings


@pytest.fixture
def service(indexed: Settings, embedder: Embedder) -> Iterator[KnowledgeService]:
    from prometheus_client import CollectorRegistry

    svc = KnowledgeService(
        indexed, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def shared_service(
    embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KnowledgeService]:
    """A service over the corpus for tests that only read: indexed once per session."""
    from prometheus_client import CollectorRegistry

    base = tmp_path_factory.mktemp("shared")
    root = write_corpus(base / "shop")
    settings = load_settings(home=base / "home", knowledge={"roots": [str(root)]})
    index_dir(settings, embedder, root)
    svc = KnowledgeService(
        settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    yield svc
    svc.close()


@asynccontextmanager
async def open_api(
    settings: Settings, embedder: Embedder
) -> AsyncIterator[tuple[Resources, httpx.AsyncClient]]:
    """Resources with a knowledge service on the shared model, and a client that talks to
    the public app as a Unix-socket peer (the machine's owner)."""
    async with open_resources(settings, embedder=embedder) as resources:
        app = with_connection(
            create_app(resources), ConnectionInfo("uds", peer=PeerCred(1, 1000, 1000))
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://patina.local"
        ) as client:
            yield resources, client


ApiFactory = Callable[[Settings], AbstractAsyncContextManager[tuple[Resources, httpx.AsyncClient]]]


@pytest.fixture
def api_for(embedder: Embedder) -> ApiFactory:
    return lambda settings: open_api(settings, embedder)
