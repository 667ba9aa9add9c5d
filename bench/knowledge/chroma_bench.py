"""(c) The evaluation corpus and queries through Chroma and through patina, side by side.

Chroma gets the same embedding function (this project's verified MiniLM embedder), so it
downloads nothing and both stores hold identical vectors for identical chunk texts; what
differs is storage, index (Chroma: HNSW) and search. Reported: indexing chunks/s, query
p50/p99 and nDCG@10 / recall@10. Needs the `bench` extra (chromadb).

    .venv/bin/python -m bench.knowledge.chroma_bench [--functions 600]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench.knowledge.common import library_functions, p50, percentile, write_items
from bench.knowledge.eval import MODULES
from service.knowledge import store
from service.knowledge.chunking import chunk_document
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.indexer import Indexer
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.search import Query
from service.knowledge.service import KnowledgeService, index_path
from service.settings import Settings


def score(ranked_paths: list[list[str]], truth: list[str]) -> tuple[float, float]:
    ndcg = recall = 0.0
    for paths, relevant in zip(ranked_paths, truth, strict=True):
        top = list(dict.fromkeys(paths))[:10]
        if relevant in top:
            ndcg += 1 / math.log2(top.index(relevant) + 2)
            recall += 1
    return ndcg / len(truth), recall / len(truth)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", type=int, default=600)
    args = parser.parse_args()
    import chromadb
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

    embedder = Embedder.from_settings(KnowledgeSettings())

    class PatinaEmbedding(EmbeddingFunction[Documents]):
        def __init__(self) -> None:
            pass

        @staticmethod
        def name() -> str:
            return "patina-minilm"

        def get_config(self) -> dict[str, Any]:
            return {}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> PatinaEmbedding:
            return PatinaEmbedding()

        def __call__(self, input: Documents) -> Embeddings:
            return list(embedder.embed(list(input)))

    items = library_functions(MODULES, limit=args.functions)
    tmp = Path(tempfile.mkdtemp(prefix="patina-chroma-bench-"))
    truth_map = write_items(tmp / "corpus", items)
    queries, truth = list(truth_map), list(truth_map.values())
    print(f"{len(items)} functions, {len(queries)} queries")

    # patina
    settings = Settings(home=tmp / "patina", knowledge=KnowledgeSettings())
    conn = store.open_index(index_path(settings))
    started = time.perf_counter()
    report = Indexer(conn, embedder, settings.knowledge).index(tmp / "corpus", repo="eval")
    patina_rate = report.chunks_written / (time.perf_counter() - started)
    conn.close()
    svc = KnowledgeService(
        settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )

    # Chroma: the same chunk texts, ids and paths.
    docs: list[str] = []
    metas: list[dict[str, str | int | float | bool]] = []
    for rel in sorted(set(truth)):
        text = (tmp / "corpus" / rel).read_text()
        for chunk in chunk_document(rel, text):
            docs.append(chunk.text)
            metas.append({"path": rel})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = chromadb.PersistentClient(
            path=str(tmp / "chroma"), settings=chromadb.Settings(anonymized_telemetry=False)
        )
        collection = client.create_collection(
            "eval", embedding_function=PatinaEmbedding(), metadata={"hnsw:space": "cosine"}
        )
    started = time.perf_counter()
    for i in range(0, len(docs), 256):
        collection.add(
            ids=[str(j) for j in range(i, min(i + 256, len(docs)))],
            documents=docs[i : i + 256],
            metadatas=metas[i : i + 256],
        )
    chroma_rate = len(docs) / (time.perf_counter() - started)

    timings: dict[str, list[float]] = {"patina semantic": [], "patina hybrid": [], "chroma": []}
    ranked: dict[str, list[list[str]]] = {k: [] for k in timings}
    for rep in range(2):  # first pass warms up; interleaved so noise hits all three
        for q in queries:
            for label in timings:
                t0 = time.perf_counter()
                if label == "chroma":
                    res = collection.query(query_texts=[q], n_results=40, include=["metadatas"])
                    metadatas = (res["metadatas"] or [[]])[0]
                    paths = [str(m["path"]) for m in metadatas]
                else:
                    mode = "semantic" if label.endswith("semantic") else "hybrid"
                    paths = [h.chunk.path for h in svc.scry(Query(q, mode=mode, limit=40))]
                elapsed = (time.perf_counter() - t0) * 1000
                if rep:
                    timings[label].append(elapsed)
                    ranked[label].append(paths)
    print(f"indexing: patina {patina_rate:.1f} chunks/s, chroma {chroma_rate:.1f} chunks/s "
          f"(ratio {patina_rate / chroma_rate:.2f}x; both embed with the same model)")  # fmt: skip
    print(f"{'':16} {'p50 ms':>8} {'p99 ms':>8} {'nDCG@10':>8} {'recall@10':>10}")
    for label, ms in timings.items():
        ndcg, recall = score(ranked[label], truth)
        print(f"{label:16} {p50(ms):8.2f} {percentile(ms, 99):8.2f} {ndcg:8.3f} {recall:10.3f}")
    svc.close()


if __name__ == "__main__":
    main()
