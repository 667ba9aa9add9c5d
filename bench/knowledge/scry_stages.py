"""Where a hybrid query's time goes: a timeline of each step of `KnowledgeService.scry` over
the code-search queries, on indexes `bench.knowledge.code_search --workdir DIR` has built.

    .venv/bin/python -m bench.knowledge.code_search --workdir DIR --modes hybrid   # once
    .venv/bin/python -m bench.knowledge.scry_stages --workdir DIR [--passes 2]

Each step is wrapped (module functions replaced for this process only) and its end is
recorded in ms from the query's start; the report gives the p10, p50 and p90 of each over
all queries. The steps run on two threads, so the columns are points on a timeline, not
durations that add up. The wrappers cost about a microsecond each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench.knowledge.code_search import DEFAULT_DATA, load_cases
from service.knowledge import search, store
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.search import Query
from service.knowledge.service import KnowledgeService
from service.settings import Settings

# (owner, attribute, label), in the order a hybrid query reaches them.
STEPS: list[tuple[Any, str, str]] = [
    (search, "prepare_match", "BM25 query prepared"),
    (search, "lexical", "BM25"),
    (search, "chunk_meta", "lexical candidates' metadata"),
    (Embedder, "_run", "embedding (ONNX run)"),
    (search, "semantic", "cosine scan"),
    (store.VectorSnapshot, "meta", "semantic hits' metadata"),
    (search, "_add_semantic", "the two sides joined"),
    (search, "_fill_cosines", "lexical candidates' cosines"),
    (search, "rank", "ranked"),
    (search, "fetch_chunks", "rows read"),
]


def instrument(marks: dict[str, float]) -> None:
    """Record in `marks` when each step ends (its last call's end, per query). A step this
    tree does not have is left out, so an older tree can be timed the same way."""
    for owner, name, label in STEPS:
        step: Callable[..., Any] | None = getattr(owner, name, None)
        if step is not None:
            setattr(owner, name, _timed(step, label, marks))


def _timed(step: Callable[..., Any], label: str, marks: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        try:
            return step(*args, **kwargs)
        finally:
            marks[label] = time.perf_counter()

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--passes", type=int, default=1)
    args = parser.parse_args()
    repos = json.loads((args.data / "repos.json").read_text())
    knowledge = KnowledgeSettings()
    embedder = Embedder.from_settings(knowledge)
    marks: dict[str, float] = {}
    instrument(marks)
    timeline: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.passes):
        for repo in repos:
            cases = load_cases(args.data / "annotations" / f"{repo['name']}.json")
            settings = Settings(home=args.workdir / "indexes" / repo["name"], knowledge=knowledge)
            svc = KnowledgeService(
                settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
            )
            try:
                svc.scry(Query("warm up"))
                for case in cases:
                    marks.clear()
                    started = time.perf_counter()
                    svc.scry(Query(case.query, limit=10))
                    timeline["scry"].append((time.perf_counter() - started) * 1000)
                    for label, at in marks.items():
                        timeline[label].append((at - started) * 1000)
            finally:
                svc.close()
    print(f"{len(timeline['scry'])} hybrid queries; ms from each query's start")
    print(f"  {'step ends':32} {'p10':>7} {'p50':>7} {'p90':>7}")
    for label in [label for _o, _n, label in STEPS] + ["scry"]:
        values = sorted(timeline.get(label, []))
        if values:
            tenth = len(values) // 10
            print(
                f"  {label:32} {values[tenth]:7.2f} {statistics.median(values):7.2f} "
                f"{values[-tenth - 1]:7.2f}"
            )


if __name__ == "__main__":
    main()
