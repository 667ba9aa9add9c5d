"""End to end: index a small project with `Indexer`, ask `POST /api/scry` as a client would,
and check that code search behaves as an agent needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.knowledge.embedder import Embedder
from service.settings import Settings, load_settings

from .conftest import ApiFactory, index_dir, write_corpus

pytestmark = pytest.mark.anyio

ROUTER = "\n".join(
    [
        '"""HTTP routing."""',
        "",
        "",
        "class Router:",
        '    """Maps paths to handlers."""',
        "",
        "    def __init__(self):",
        "        self.routes = {}",
        "",
        "    def add(self, path, handler):",
        "        self.routes[path] = handler",
        "",
        "    def match(self, path):",
        "        return self.routes.get(path)",
        "",
    ]
)
PROJECT = {
    "pkg/router.py": ROUTER,
    "pkg/__init__.py": 'from .router import Router\n\n__all__ = ["Router"]\n',
    "app.py": "from pkg import Router\n\n\ndef build():\n"
    + "".join(f"    Router().add('/r{i}', Router())  # Router\n" for i in range(8)),
    "tests/test_router.py": "from pkg import Router\n\n\n"
    + "".join(
        f"def test_router_{i}():\n    router = Router()\n    assert Router().match('/') is None\n\n"
        for i in range(6)
    ),
    "docs/routing.md": "# Routing\n\nThe Router maps paths to handlers. Router, Router, Router.\n",
    "pkg/middleware/recoverer.py": "def recover(handler):\n"
    "    def wrapped(request):\n"
    "        try:\n"
    "            return handler(request)\n"
    "        except Exception:\n"
    "            return 500\n"
    "    return wrapped\n",
    "pkg/middleware/logger.py": "def log_requests(handler):\n"
    "    def wrapped(request):\n"
    "        print(request)\n"
    "        return handler(request)\n"
    "    return wrapped\n",
}


def project(tmp_path: Path) -> Settings:
    root = write_corpus(tmp_path / "web", PROJECT)
    return load_settings(home=tmp_path / "home", knowledge={"roots": [str(root)]})


async def test_a_symbol_query_ranks_the_definition_above_reexports_imports_and_tests(
    api_for: ApiFactory, embedder: Embedder, tmp_path: Path
) -> None:
    settings = project(tmp_path)
    index_dir(settings, embedder, tmp_path / "web")
    async with api_for(settings) as (_resources, client):
        response = await client.post("/api/scry", json={"query": "Router"})
    assert response.status_code == 200
    paths = [r["path"] for r in response.json()["results"]]
    assert paths[0] == "pkg/router.py"
    for other in ("pkg/__init__.py", "app.py", "tests/test_router.py", "docs/routing.md"):
        if other in paths:
            assert paths.index(other) > 0


async def test_a_question_in_words_finds_the_file_named_for_it(
    api_for: ApiFactory, embedder: Embedder, tmp_path: Path
) -> None:
    settings = project(tmp_path)
    index_dir(settings, embedder, tmp_path / "web")
    async with api_for(settings) as (_resources, client):
        response = await client.post("/api/scry", json={"query": "panic recovery middleware"})
    results = response.json()["results"]
    assert results[0]["path"] == "pkg/middleware/recoverer.py"
    # One file does not fill the list: each path appears once before any repeats.
    paths = [r["path"] for r in results]
    assert len(set(paths[:3])) == min(3, len(set(paths)))
