"""fp32 graph vs dynamic int8 graph: embedding speed, side by side, same texts, same run.

Rounds alternate between the two sessions so machine noise hits both. Texts are the
stdlib-window chunks of the scry benchmark (code, 12 lines each) and short queries.

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = [text for _name, text in stdlib_windows(args.texts)]
    queries = [item.query for item in library_functions(MODULES, limit=50)]
    models = {
        "fp32": Embedder.from_settings(KnowledgeSettings()),
        "int8": Embedder.from_settings(KnowledgeSettings(quantize=True)),
    }
    chunk_rate: dict[str, list[float]] = {k: [] for k in models}
    query_ms: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for name, embedder in models.items():
            started = time.perf_counter()
            embedder.embed(texts)
            chunk_rate[name].append(len(texts) / (time.perf_counter() - started))
            for q in queries:
                t0 = time.perf_counter()
                embedder.embed([q])
                query_ms[name].append((time.perf_counter() - t0) * 1000)
    a, b = models["fp32"].embed(texts[:64]), models["int8"].embed(texts[:64])
    cosine = float(np.mean(np.sum(a * b, axis=1)))
    for name in models:
        print(
            f"{name}: {max(chunk_rate[name]):6.1f} chunks/s (best of {args.rounds}), "
            f"query p50 {p50(query_ms[name]):.1f} ms"
        )
    print(
        f"int8/fp32: chunks {max(chunk_rate['int8']) / max(chunk_rate['fp32']):.2f}x, "
        f"query p50 {p50(query_ms['fp32']) / p50(query_ms['int8']):.2f}x faster; "
        f"mean cosine(fp32, int8) of the same text {cosine:.5f}"
    )


if __name__ == "__main__":
    main()
