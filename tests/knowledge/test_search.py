"""Search quality and behaviour on a small real corpus with the real model."""

from __future__ import annotations

import threading
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import pytest

from service.knowledge import search, store
from service.knowledge.embedder import Embedder
from service.knowledge.lexical import prepare_match
from service.knowledge.search import Hit, Query, run_query, semantic
from service.knowledge.service import KnowledgeService, index_path
from service.settings import Settings

from .conftest import index_dir

PARAPHRASE = "coffee maker cleaning schedule"  # no word shared with its target paragraph
IDENTIFIER = "compute_backoff_delay"


def where(hits: list[Hit]) -> list[str]:
    return [h.chunk.path for h in hits]


def test_paraphrase_finds_its_chunk_semantically(shared_service: KnowledgeService) -> None:
    hits = shared_service.scry(Query(PARAPHRASE, mode="semantic", limit=3))
    assert hits[0].chunk.path == "notes/office.txt"
    assert "espresso machine" in hits[0].chunk.content
    assert hits[0].modes == ("semantic",)
    # Lexical search cannot find it: the words differ.
    lexical = shared_service.scry(Query(PARAPHRASE, mode="lexical", limit=10))
    assert not any("espresso" in h.chunk.content for h in lexical)


def test_exact_identifier_finds_its_function_lexically(shared_service: KnowledgeService) -> None:
    hits = shared_service.scry(Query(IDENTIFIER, mode="lexical", limit=3))
    top = hits[0].chunk
    assert top.path == "src/retry.py"
    assert IDENTIFIER in top.symbols
    assert "def compute_backoff_delay(" in top.content
    assert hits[0].modes == ("lexical",)


def test_hybrid_returns_what_each_mode_finds(shared_service: KnowledgeService) -> None:
    paraphrase = shared_service.scry(Query(PARAPHRASE, limit=3))
    assert paraphrase[0].chunk.path == "notes/office.txt"
    assert "semantic" in paraphrase[0].modes
    identifier = shared_service.scry(Query(IDENTIFIER, limit=3))
    assert IDENTIFIER in identifier[0].chunk.symbols
    assert "lexical" in identifier[0].modes
    both = shared_service.scry(Query(f"{IDENTIFIER} {PARAPHRASE}", limit=5))
    assert any(IDENTIFIER in h.chunk.symbols for h in both)
    assert any("espresso machine" in h.chunk.content for h in both)
    assert 0 < both[0].score <= 1.0


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced',
        "NEAR(retry backoff",
        "retry AND OR NOT",
        "path:src content:*",
        "^start -minus +plus (((",
        "'; DROP TABLE chunks; --",
        "*",
        "compute_backoff_delay(attempt)",
    ],
)
@pytest.mark.parametrize("mode", ["lexical", "semantic", "hybrid"])
def test_fts_syntax_in_a_query_is_harmless(
    shared_service: KnowledgeService, query: str, mode: str
) -> None:
    hits = shared_service.scry(Query(query, mode=mode, limit=5))  # type: ignore[arg-type]
    if query.startswith("compute_backoff_delay") and mode != "semantic":
        assert IDENTIFIER in hits[0].chunk.symbols


def test_very_common_words_are_dropped_from_the_fts_query(shared_service: KnowledgeService) -> None:
    with shared_service.pool.borrow() as conn:
        total = store.counts(conn)[1]
        match = prepare_match(conn, "the espresso", total=total, max_df_ratio=0.2, max_terms=16)
        only_common = prepare_match(conn, "the", total=total, max_df_ratio=0.2, max_terms=16)
        nothing = prepare_match(conn, "zzqx !!", total=total, max_df_ratio=0.2, max_terms=16)
    assert match == '"espresso"'
    assert only_common == '"the"'  # all words common: the rarest stay
    assert nothing is None


def test_filters_by_repo_kind_and_path_prefix(
    service: KnowledgeService, settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "retry.md").write_text("# Retry\n\ncompute_backoff_delay is documented here.\n")
    index_dir(settings, embedder, other, repo="handbook")
    everywhere = service.scry(Query(IDENTIFIER, limit=10))
    assert {h.chunk.repo for h in everywhere} == {"shop", "handbook"}
    only_shop = service.scry(Query(IDENTIFIER, limit=10, repo="shop"))
    assert {h.chunk.repo for h in only_shop} == {"shop"}
    only_md = service.scry(Query(IDENTIFIER, limit=10, kind="markdown"))
    assert {h.chunk.kind for h in only_md} == {"markdown"}
    in_src = service.scry(Query("invoice", limit=10, path_prefix="src/"))
    assert in_src
    assert all(h.chunk.path.startswith("src/") for h in in_src)
    for mode in ("lexical", "semantic"):
        filtered = service.scry(Query("retry", mode=mode, limit=10, path_prefix="docs/"))  # type: ignore[arg-type]
        assert all(h.chunk.path.startswith("docs/") for h in filtered)


def test_min_score_drops_weaker_results(shared_service: KnowledgeService) -> None:
    everything = shared_service.scry(Query(PARAPHRASE, mode="semantic", limit=50))
    cut = everything[2].score
    kept = shared_service.scry(Query(PARAPHRASE, mode="semantic", limit=50, min_score=cut))
    assert kept == [h for h in everything if h.score >= cut]
    assert len(kept) < len(everything)


def test_results_are_deterministic(shared_service: KnowledgeService) -> None:
    first = shared_service.scry(Query("retry release invoice", limit=20))
    for _ in range(3):
        assert shared_service.scry(Query("retry release invoice", limit=20)) == first


def test_the_service_picks_up_an_index_written_by_another_writer(
    service: KnowledgeService, settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    before = service.generation
    assert not service.scry(Query("zeppelin hangar", mode="lexical"))
    (corpus / "notes/airship.txt").write_text("The zeppelin hangar opens at dawn.\n")
    index_dir(settings, embedder, corpus)  # a separate connection, as the CLI would be
    hits = service.scry(Query("zeppelin hangar", mode="semantic", limit=1))
    assert hits[0].chunk.path == "notes/airship.txt"
    assert service.generation > before


def test_a_deleted_file_disappears_from_results(
    service: KnowledgeService, settings: Settings, embedder: Embedder, corpus: Path
) -> None:
    assert "notes/office.txt" in where(service.scry(Query(PARAPHRASE, limit=3)))
    (corpus / "notes/office.txt").unlink()
    index_dir(settings, embedder, corpus)
    for mode in ("hybrid", "lexical", "semantic"):
        hits = service.scry(Query("espresso " + PARAPHRASE, mode=mode, limit=50))  # type: ignore[arg-type]
        assert "notes/office.txt" not in where(hits)


def test_an_index_from_newer_code_is_refused(settings: Settings) -> None:
    path = index_path(settings)
    conn = store.open_index(path)
    conn.execute(f"PRAGMA user_version={store.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(store.StoreError, match="newer than this service"):
        store.open_index(path)


def test_a_new_index_gets_the_current_schema_and_private_mode(settings: Settings) -> None:
    path = index_path(settings)
    conn = store.open_index(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_hybrid_embeds_and_scans_on_another_thread_with_the_same_answer(
    shared_service: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = Query(f"{IDENTIFIER} {PARAPHRASE}", limit=5)
    embedded: list[str] = []
    scanned: list[str] = []
    embed = shared_service.embedder.embed

    def recording(texts: list[str], **kwargs: object) -> object:
        embedded.append(threading.current_thread().name)
        return embed(texts, **kwargs)  # type: ignore[arg-type]

    def scanning(*args: Any, **kwargs: Any) -> Any:
        scanned.append(threading.current_thread().name)
        return semantic(*args, **kwargs)

    monkeypatch.setattr(shared_service.embedder, "embed", recording)
    monkeypatch.setattr(search, "semantic", scanning)
    overlapped = shared_service.scry(query)
    with shared_service.pool.borrow() as conn:
        snapshot = shared_service.snapshot(conn)
        inline = run_query(conn, snapshot, shared_service.embedder, query, shared_service.settings)
    assert embedded[0].startswith("patina-query-embed")
    assert scanned[0] == embedded[0]
    assert embedded[1] == scanned[1] == threading.current_thread().name
    assert [(h.chunk.id, h.score) for h in overlapped] == [(h.chunk.id, h.score) for h in inline]


def test_a_given_query_vector_is_scanned_on_another_thread_and_not_embedded(
    shared_service: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A federated request brings its query's vector: its cosine scan still runs while BM25
    does, and the text is not embedded again."""
    text = f"{IDENTIFIER} {PARAPHRASE}"
    vector = shared_service.embed_query(text)
    scanned: list[str] = []

    def scanning(*args: Any, **kwargs: Any) -> Any:
        scanned.append(threading.current_thread().name)
        return semantic(*args, **kwargs)

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the query was embedded although its vector was given")

    expected = shared_service.scry(Query(text, limit=5))
    monkeypatch.setattr(shared_service.embedder, "embed", refuse)
    monkeypatch.setattr(search, "semantic", scanning)
    given = shared_service.scry(Query(text, limit=5, vector=vector))
    assert scanned[0].startswith("patina-query-embed")
    assert [(h.chunk.id, h.score) for h in given] == [(h.chunk.id, h.score) for h in expected]


def test_the_query_embedding_threads_exist_from_the_start_and_queries_add_none(
    service: KnowledgeService, indexed: Settings
) -> None:
    """The service's thread count at rest does not depend on how busy it has been."""

    def embedding_threads() -> set[int | None]:
        return {t.ident for t in threading.enumerate() if t.name.startswith("patina-query-embed")}

    started = embedding_threads()
    assert len(started) >= indexed.max_concurrent_queries
    with ThreadPool(indexed.max_concurrent_queries + 2) as pool:
        pool.map(lambda _: service.scry(Query(f"{IDENTIFIER} {PARAPHRASE}")), range(12))
    assert embedding_threads() <= started
