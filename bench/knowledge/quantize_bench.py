"""The model's graphs (service/knowledge/graphs.py) side by side: chunks per second, one
short query's embedding time, and how close each graph's vectors are to fp32's.

Rounds alternate between the sessions so machine noise hits each alike. Texts are the
stdlib-window chunks of the scry benchmark (code, 12 lines each) and short queries
(docstring first lines). Each session runs on one ONNX thread for queries, as the service
does (`knowledge.query_intra_op_threads`), and on two for chunks.

    .venv/bin/python -m bench.knowledge.quantize_bench [--texts 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.knowledge.common import library_functions, p50
from bench.knowledge.eval import MODULES
from bench.knowledge.scry_bench import stdlib_windows
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.graphs import GRAPHS
from service.knowledge.model import load_model_files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = [text for _name, text in stdlib_windows(args.texts)]
    queries = [item.query for item in library_functions(MODULES, limit=50)]
    files = load_model_files(KnowledgeSettings())
    batch = {graph: Embedder(files, graph=graph, intra_op_threads=2) for graph in GRAPHS}
    single = {graph: Embedder(files, graph=graph, intra_op_threads=1) for graph in GRAPHS}
    chunk_rate: dict[str, list[float]] = {g: [] for g in GRAPHS}
    query_ms: dict[str, list[float]] = {g: [] for g in GRAPHS}
    for _ in range(args.rounds):
        for graph in GRAPHS:
            started = time.perf_counter()
            batch[graph].embed(texts)
            chunk_rate[graph].append(len(texts) / (time.perf_counter() - started))
            for q in queries:
                t0 = time.perf_counter()
                single[graph].embed([q])
                query_ms[graph].append((time.perf_counter() - t0) * 1000)
    reference = single["fp32"].embed(texts[:64] + queries)
    fp32_rate, fp32_ms = max(chunk_rate["fp32"]), p50(query_ms["fp32"])
    print(f"{len(texts)} chunks, {len(queries)} queries, {args.rounds} rounds")
    print("graph          chunks/s  x fp32   query p50 ms  x fp32   cosine to fp32 (mean, min)")
    for graph in GRAPHS:
        cosines = np.sum(single[graph].embed(texts[:64] + queries) * reference, axis=1)
        rate, ms = max(chunk_rate[graph]), p50(query_ms[graph])
        print(
            f"{graph:13} {rate:9.1f} {rate / fp32_rate:7.2f}x {ms:13.2f} {fp32_ms / ms:7.2f}x"
            f"   {float(cosines.mean()):.5f}, {float(cosines.min()):.5f}"
        )


if __name__ == "__main__":
    main()
