"""Retrieval evaluation: nDCG@10 and recall@10 per mode, fp32 vs dynamic-int8 graph.

Documents are functions of installed libraries with their docstrings stripped; each query
is a docstring's first line and its one relevant document is that function. Run:

    .venv/bin/python -m bench.knowledge.eval [--functions 600]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

from prometheus_client import CollectorRegistry

from bench.knowledge.common import library_functions, write_items
from service.knowledge import store
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.indexer import Indexer
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.search import Query, fuse, lexical, prepare_fts_query, semantic
from service.knowledge.service import KnowledgeService, index_path
from service.settings import Settings

MODULES = [
    "pathlib", "shutil", "subprocess", "tarfile", "zipfile", "argparse", "logging",
    "email.message", "http.client", "urllib.parse", "json.decoder", "csv", "textwrap",
    "configparser", "datetime", "fractions", "ipaddress", "difflib", "inspect", "typing",
    "asyncio.streams", "asyncio.tasks", "threading", "queue", "heapq", "statistics",
]  # fmt: skip


FUSION_GRID = [(lw, k) for lw in (1.0, 0.5, 0.3, 0.2, 0.1) for k in (60, 20)]


def ranked_lists(
    svc: KnowledgeService, truth: dict[str, str]
) -> list[tuple[str, dict[str, list[tuple[int, float]]]]]:
    """Per query, the lexical and semantic candidate lists exactly as hybrid fetches them."""
    out = []
    with svc.pool.borrow() as conn:
        snap = svc.snapshot(conn)
        for query, relevant in truth.items():
            q = Query(query, limit=40)
            match = prepare_fts_query(
                conn,
                query,
                total=snap.size,
                max_df_ratio=svc.settings.max_df_ratio,
                max_terms=svc.settings.max_query_terms,
            )
            depth = max(q.limit, svc.settings.candidates)
            vector = svc.embedder.embed([query])[0]
            lists = {
                "lexical": lexical(conn, match, q, limit=depth),
                "semantic": semantic(snap, vector, q, limit=depth),
            }
            out.append((relevant, lists))
    return out


def metrics(paths_per_query: list[tuple[str, list[str]]]) -> tuple[float, float]:
    """nDCG@10 and recall@10 with one relevant document per query (chunks deduplicated)."""
    ndcg = recall = 0.0
    for relevant, paths in paths_per_query:
        ranked = list(dict.fromkeys(paths))[:10]
        if relevant in ranked:
            ndcg += 1 / math.log2(ranked.index(relevant) + 2)
            recall += 1
    return ndcg / len(paths_per_query), recall / len(paths_per_query)


def evaluate(
    svc: KnowledgeService, cached: list[tuple[str, dict[str, list[tuple[int, float]]]]]
) -> dict[str, tuple[float, float]]:
    """Scores of lexical, semantic and every fusion setting of the grid."""
    snap = svc._snapshot
    path_of = dict(zip(snap.ids.tolist(), snap.paths, strict=True))
    out: dict[str, tuple[float, float]] = {}
    for mode in ("lexical", "semantic"):
        out[mode] = metrics([(rel, [path_of[c] for c, _s in lists[mode]]) for rel, lists in cached])
    for lw, k in FUSION_GRID:
        weights = {"lexical": lw, "semantic": 1.0}
        out[f"hybrid lexical_weight={lw} k={k}"] = metrics(
            [
                (rel, [path_of[c] for c, _s, _m in fuse(lists, weights, k=k)])
                for rel, lists in cached
            ]
        )
    return out


def build(home: Path, corpus: Path, knowledge: KnowledgeSettings) -> tuple[KnowledgeService, float]:
    settings = Settings(home=home, knowledge=knowledge)
    embedder = Embedder.from_settings(knowledge)
    conn = store.open_index(index_path(settings))
    started = time.perf_counter()
    report = Indexer(conn, embedder, knowledge).index(corpus, repo="eval")
    seconds = time.perf_counter() - started
    conn.close()
    svc = KnowledgeService(
        settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    return svc, report.chunks_embedded / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", type=int, default=600)
    args = parser.parse_args()
    items = library_functions(MODULES, limit=args.functions)
    tmp = Path(tempfile.mkdtemp(prefix="patina-eval-"))
    truth = write_items(tmp / "corpus", items)
    print(
        f"corpus: {len(items)} functions from {len(MODULES)} stdlib modules, {len(truth)} queries"
    )
    # A second query set: the function's name, for functions whose name is unique.
    names = Counter(item.name.split(".")[-2] for item in items)
    identifiers = {
        item.name.split(".")[-2]: truth[item.query]
        for item in items
        if names[item.name.split(".")[-2]] == 1 and not item.name.split(".")[-2].startswith("_")
    }
    print(f"identifier queries: {len(identifiers)}")
    defaults = KnowledgeSettings()
    default_key = f"hybrid lexical_weight={defaults.lexical_weight} k={defaults.rrf_k}"
    results: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    for label, quantize in (("fp32 graph", False), ("dynamic int8", True)):
        knowledge = KnowledgeSettings(quantize=quantize)
        svc, rate = build(tmp / label.replace(" ", "_"), tmp / "corpus", knowledge)
        print(f"\n{label}: indexed at {rate:.1f} chunks/s")
        for set_name, queries in (("docstring", truth), ("identifier", identifiers)):
            started = time.perf_counter()
            cached = ranked_lists(svc, queries)
            ms = (time.perf_counter() - started) / len(queries) * 1000
            results[label, set_name] = scores = evaluate(svc, cached)
            print(f"  {set_name} queries ({ms:.1f} ms/query for both lists):")
            for name, (ndcg, recall) in scores.items():
                mark = "  <- default" if name == default_key else ""
                print(f"    {name:34} nDCG@10 {ndcg:.3f}  recall@10 {recall:.3f}{mark}")
        svc.close()
    for set_name in ("docstring", "identifier"):
        for name in ("semantic", default_key):
            base = results["fp32 graph", set_name][name]
            quant = results["dynamic int8", set_name][name]
            print(
                f"int8 - fp32, {set_name}, {name}: nDCG@10 {quant[0] - base[0]:+.3f}, "
                f"recall@10 {quant[1] - base[1]:+.3f}"
            )


if __name__ == "__main__":
    main()
