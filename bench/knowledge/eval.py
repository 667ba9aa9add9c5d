"""Retrieval evaluation on prose questions: nDCG@10 and recall@10 per mode and embedder.

Documents are functions of installed libraries with their docstrings stripped; each query
is a docstring's first line and its one relevant document is that function; a second set
asks for each function by its (unique) name. Every query goes through
`KnowledgeService.scry`, the path `POST /api/scry` takes, ranking stage included. Run:

    .venv/bin/python -m bench.knowledge.eval [--functions 600] [--embedders minilm static]
        [--query-graph int8-weights|fp32|int8-dynamic]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from bench.knowledge.common import library_functions, write_items
from service.knowledge import store
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder, TextEmbedder
from service.knowledge.graphs import GRAPHS, Graph
from service.knowledge.indexer import Indexer
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.model import load_model_files
from service.knowledge.search import Mode, Query
from service.knowledge.service import KnowledgeService, index_path
from service.knowledge.static_embedder import StaticEmbedder
from service.settings import Settings

MODULES = [
    "pathlib", "shutil", "subprocess", "tarfile", "zipfile", "argparse", "logging",
    "email.message", "http.client", "urllib.parse", "json.decoder", "csv", "textwrap",
    "configparser", "datetime", "fractions", "ipaddress", "difflib", "inspect", "typing",
    "asyncio.streams", "asyncio.tasks", "threading", "queue", "heapq", "statistics",
]  # fmt: skip


MODES: tuple[Mode, ...] = ("lexical", "semantic", "hybrid")


def metrics(paths_per_query: list[tuple[str, list[str]]]) -> tuple[float, float]:
    """nDCG@10 and recall@10 with one relevant document per query (chunks deduplicated)."""
    ndcg = recall = 0.0
    for relevant, paths in paths_per_query:
        ranked = list(dict.fromkeys(paths))[:10]
        if relevant in ranked:
            ndcg += 1 / math.log2(ranked.index(relevant) + 2)
            recall += 1
    return ndcg / len(paths_per_query), recall / len(paths_per_query)


def evaluate(svc: KnowledgeService, truth: dict[str, str], mode: Mode) -> tuple[float, float]:
    """Scores of one mode over one query set, through the service's scry."""
    runs = []
    for query, relevant in truth.items():
        hits = svc.scry(Query(query, mode=mode, limit=40))
        runs.append((relevant, [h.chunk.path for h in hits]))
    return metrics(runs)


def build(
    home: Path, corpus: Path, knowledge: KnowledgeSettings, pair: EmbedderPair
) -> tuple[KnowledgeService, float]:
    settings = Settings(home=home, knowledge=knowledge)
    conn = store.open_index(index_path(settings))
    started = time.perf_counter()
    report = Indexer(conn, pair.indexing, knowledge).index(corpus, repo="eval")
    seconds = time.perf_counter() - started
    conn.close()
    svc = KnowledgeService(
        settings, embedder=pair.queries, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    return svc, report.chunks_embedded / seconds


@dataclass(frozen=True)
class EmbedderPair:
    """What embeds the chunks and what embeds the queries (the service's default graphs
    differ: int8-dynamic for batches, int8-weights for one short query)."""

    indexing: TextEmbedder
    queries: TextEmbedder


def embedders(names: list[str], work: Path, query_graph: Graph) -> dict[str, EmbedderPair]:
    knowledge = KnowledgeSettings(query_graph=query_graph)
    out: dict[str, EmbedderPair] = {}
    for name in names:
        if name == "minilm":
            out[name] = EmbedderPair(
                Embedder.from_settings(knowledge, for_indexing=True),
                Embedder.from_settings(knowledge),
            )
        elif name == "static":
            files = load_model_files(knowledge)
            fp32 = Embedder(files, graph="fp32")
            static = StaticEmbedder.load_or_distill(fp32, files.tokenizer_json, work)
            out[name] = EmbedderPair(static, static)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", type=int, default=600)
    parser.add_argument("--embedders", nargs="+", default=["minilm", "static"])
    parser.add_argument("--query-graph", choices=GRAPHS, default=KnowledgeSettings().query_graph)
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
    for label, pair in embedders(args.embedders, tmp / "static", args.query_graph).items():
        svc, rate = build(tmp / label, tmp / "corpus", KnowledgeSettings(), pair)
        print(
            f"\n{label}: indexed at {rate:.1f} chunks/s "
            f"(chunks: {pair.indexing.graph}, queries: {pair.queries.graph})"
        )
        for set_name, queries in (("docstring", truth), ("identifier", identifiers)):
            for mode in MODES:
                started = time.perf_counter()
                ndcg, recall = evaluate(svc, queries, mode)
                ms = (time.perf_counter() - started) / len(queries) * 1000
                mark = "  <- default" if mode == "hybrid" else ""
                print(
                    f"  {set_name:10} {mode:9} nDCG@10 {ndcg:.3f}  recall@10 {recall:.3f}  "
                    f"({ms:.1f} ms/query){mark}"
                )
        svc.close()


if __name__ == "__main__":
    main()
