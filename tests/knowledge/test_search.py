"""Search quality and behaviour on a small real corpus with the real model."""

from __future__ import annotations

import threading
import time
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


def test_the_snapshot_describes_each_chunk_as_the_database_does(
    shared_service: KnowledgeService,
) -> None:
    """Ranking reads the semantic hits' path, role and symbols from the snapshot."""
    with shared_service.pool.borrow() as conn:
        snapshot = shared_service.snapshot(conn)
        ids = snapshot.ids.tolist()
        assert snapshot.meta(ids) == store.chunk_meta(conn, set(ids))
    assert any(symbols for _path, _role, symbols in snapshot.meta(ids).values())
    assert snapshot.meta([max(ids) + 1, -5]) == {}


@pytest.mark.parametrize("mode", ["hybrid", "semantic"])
def test_a_hit_deleted_after_the_snapshot_loaded_is_ranked_away(
    service: KnowledgeService, settings: Settings, embedder: Embedder, corpus: Path, mode: str
) -> None:
    """A query answering from the snapshot loaded before a file was deleted (another query
    is loading the new one) lists neither the deleted chunk nor fewer hits than asked."""
    query = Query(PARAPHRASE, mode=mode, limit=3)  # type: ignore[arg-type]
    with service.pool.borrow() as conn:
        stale = service.snapshot(conn)
        assert (
            where(run_query(conn, stale, embedder, query, settings.knowledge))[0]
            == "notes/office.txt"
        )
    (corpus / "notes/office.txt").unlink()
    index_dir(settings, embedder, corpus)
    with service.pool.borrow() as conn:
        hits = run_query(conn, stale, embedder, query, settings.knowledge)
    assert "notes/office.txt" not in where(hits)
    assert len(hits) == 3
    assert hits[0].score == 1.0


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


def _record_threads(
    monkeypatch: pytest.MonkeyPatch, service: KnowledgeService
) -> dict[str, list[str]]:
    """The name of the thread each embedding, cosine scan and BM25 search runs on."""
    seen: dict[str, list[str]] = {"embed": [], "scan": [], "bm25": []}

    def on_thread(step: str, work: Any) -> Any:
        def recording(*args: Any, **kwargs: Any) -> Any:
            seen[step].append(threading.current_thread().name)
            return work(*args, **kwargs)

        return recording

    monkeypatch.setattr(service.embedder, "embed", on_thread("embed", service.embedder.embed))
    monkeypatch.setattr(search, "semantic", on_thread("scan", semantic))
    monkeypatch.setattr(search, "lexical", on_thread("bm25", search.lexical))
    return seen


def test_hybrid_runs_bm25_on_another_thread_beside_the_embedding_with_the_same_answer(
    shared_service: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = Query(f"{IDENTIFIER} {PARAPHRASE}", limit=5)
    seen = _record_threads(monkeypatch, shared_service)
    here = threading.current_thread().name
    overlapped = shared_service.scry(query)
    assert seen == {"embed": [here], "scan": [here], "bm25": [seen["bm25"][0]]}
    assert seen["bm25"][0].startswith("patina-query-bm25")
    # Without an executor every step runs on the query's thread, with the same answer.
    with shared_service.pool.borrow() as conn:
        snapshot = shared_service.snapshot(conn)
        inline = run_query(conn, snapshot, shared_service.embedder, query, shared_service.settings)
    assert seen["bm25"][1] == here
    assert [(h.chunk.id, h.score) for h in overlapped] == [(h.chunk.id, h.score) for h in inline]


def test_a_given_query_vector_is_scanned_beside_bm25_and_not_embedded(
    shared_service: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A federated request brings its query's vector: its cosine scan still runs while BM25
    does, and the text is not embedded again."""
    text = f"{IDENTIFIER} {PARAPHRASE}"
    vector = shared_service.embed_query(text)
    expected = shared_service.scry(Query(text, limit=5))

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the query was embedded although its vector was given")

    monkeypatch.setattr(shared_service.embedder, "embed", refuse)
    seen = _record_threads(monkeypatch, shared_service)
    given = shared_service.scry(Query(text, limit=5, vector=vector))
    assert seen["scan"] == [threading.current_thread().name]
    assert seen["bm25"][0].startswith("patina-query-bm25")
    assert [(h.chunk.id, h.score) for h in given] == [(h.chunk.id, h.score) for h in expected]


def test_a_failed_embedding_returns_only_after_bm25_let_go_of_the_connection(
    shared_service: KnowledgeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The query's connection goes back to the pool when the query ends: BM25 on the other
    thread must be done with it by then, also when the embedding raised first."""
    events: list[str] = []
    bm25 = search.lexical

    def slow_bm25(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)
        result = bm25(*args, **kwargs)
        events.append("bm25 done")
        return result

    def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(search, "lexical", slow_bm25)
    monkeypatch.setattr(shared_service.embedder, "embed", broken)
    with pytest.raises(RuntimeError, match="fell over"):
        shared_service.scry(Query(f"{IDENTIFIER} {PARAPHRASE}"))
    events.append("query ended")
    assert events == ["bm25 done", "query ended"]
    monkeypatch.undo()
    assert shared_service.scry(Query(IDENTIFIER, limit=1))[0].chunk.symbols


def test_the_query_bm25_threads_exist_from_the_start_and_queries_add_none(
    service: KnowledgeService, indexed: Settings
) -> None:
    """The service's thread count at rest does not depend on how busy it has been."""

    def bm25_threads() -> set[int | None]:
        return {t.ident for t in threading.enumerate() if t.name.startswith("patina-query-bm25")}

    started = bm25_threads()
    assert len(started) >= indexed.max_concurrent_queries
    with ThreadPool(indexed.max_concurrent_queries + 2) as pool:
        pool.map(lambda _: service.scry(Query(f"{IDENTIFIER} {PARAPHRASE}")), range(12))
    assert bm25_threads() <= started
