"""Tune the ranking stage's weights on the code-search development set.

Retrieval runs once per query (the same `retrieve` the service runs); then the ranking
weights of ranking.py are varied one at a time over a small grid (coordinate ascent, a few
rounds) and each setting re-ranks every query's candidates. Prints the best weights and
their NDCG@10 (mean over repositories, as code_search.py reports). Needs the indexes that
`code_search.py --workdir DIR` built:

    .venv/bin/python -m bench.knowledge.code_search --workdir /tmp/cs --embedder static
    .venv/bin/python -m bench.knowledge.code_search_tune --workdir /tmp/cs --embedder static

The weights it finds are for reading, not for pasting blindly: a change is worth keeping
when it holds across repositories and categories (printed) and has a reason.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench.knowledge.code_search import (
    CATEGORIES,
    DEFAULT_DATA,
    Case,
    load_cases,
    ndcg10,
)
from service.knowledge import ranking
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder, TextEmbedder
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.model import load_model_files
from service.knowledge.ranking import Candidate, Intent, analyse, rank
from service.knowledge.search import Mode, Query, retrieve
from service.knowledge.service import KnowledgeService
from service.knowledge.static_embedder import StaticEmbedder
from service.knowledge.store import fetch_chunks
from service.settings import Settings

Prepared = list[tuple[str, Case, Intent, list[Candidate], dict[int, tuple[str, int, int]]]]

GRID: dict[str, list[float]] = {
    "SYMBOL_SEMANTIC_SHARE": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    "TEXT_SEMANTIC_SHARE": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
    "DEFINITION_BOOST": [0.0, 0.25, 0.5, 1.0, 2.0, 3.0],
    "MEMBER_MATCH": [0.2, 0.35, 0.5, 0.7, 1.0],
    "CASE_MATCH": [0.0, 0.1, 0.3, 0.5],
    "EMBEDDED_SCALE": [0.0, 0.25, 0.5, 1.0],
    "FILE_NAMED_AFTER": [1.0, 1.25, 1.5, 2.0],
    "NAME_BOOST": [0.0, 0.25, 0.5, 1.0, 1.5, 2.0],
    "SAME_FILE_DECAY": [0.0, 0.1, 0.3, 0.5, 0.7],
    "imports": [0.2, 0.35, 0.5, 0.7, 1.0],
    "exports": [0.2, 0.35, 0.5, 0.7, 1.0],
    "test": [0.1, 0.2, 0.3, 0.5],
    "example": [0.1, 0.2, 0.35, 0.5],
    "docs": [0.1, 0.2, 0.3, 0.5],
    "config": [0.1, 0.2, 0.4, 0.6],
}


def prepare(work: Path, data: Path, embedder: TextEmbedder, mode: Mode) -> Prepared:
    """Every query's intent and candidates (and the candidates' paths and lines)."""
    repos = json.loads((data / "repos.json").read_text())
    out: Prepared = []
    for repo in repos:
        home = work / "indexes" / repo["name"]
        if not home.exists():
            continue
        settings = Settings(home=home, knowledge=KnowledgeSettings())
        svc = KnowledgeService(
            settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
        )
        try:
            with svc.pool.borrow() as conn:
                snapshot = svc.snapshot(conn)
                for case in load_cases(data / "annotations" / f"{repo['name']}.json"):
                    intent = analyse(case.query)
                    query = Query(case.query, mode=mode, limit=10)
                    found = retrieve(conn, snapshot, embedder, query, svc.settings, intent)
                    rows = fetch_chunks(conn, [c.id for c in found])
                    where = {i: (r.path, r.start_line, r.end_line) for i, r in rows.items()}
                    out.append((repo["name"], case, intent, found, where))
        finally:
            svc.close()
    return out


def score(prepared: Prepared, mode: Mode) -> tuple[float, dict[str, float]]:
    """NDCG@10 (mean over repositories) and per category (mean of per-repo means)."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for repo, case, intent, found, where in prepared:
        picked = rank(found, intent, mode=mode, limit=10)
        value = ndcg10(case, [where[c.id] for c in picked if c.id in where])
        per[repo]["all"].append(value)
        per[repo][case.category].append(value)
    overall = sum(sum(v["all"]) / len(v["all"]) for v in per.values()) / len(per)
    cats = {}
    for cat in CATEGORIES:
        means = [sum(v[cat]) / len(v[cat]) for v in per.values() if v.get(cat)]
        cats[cat] = sum(means) / len(means)
    return overall, cats


def setter(name: str) -> Callable[[float], None]:
    if name in ranking.ROLE_PRIORS:
        return lambda value: ranking.ROLE_PRIORS.__setitem__(name, value)
    return lambda value: setattr(ranking, name, value)


def getter(name: str) -> float:
    if name in ranking.ROLE_PRIORS:
        return ranking.ROLE_PRIORS[name]
    value: Any = getattr(ranking, name)
    return float(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--embedder", choices=["minilm", "static"], default="static")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    knowledge = KnowledgeSettings()
    embedder: TextEmbedder = Embedder.from_settings(knowledge)
    if args.embedder == "static":
        files = load_model_files(knowledge)
        embedder = StaticEmbedder.load_or_distill(
            Embedder(files, graph="fp32"), files.tokenizer_json, args.workdir / "static"
        )
    mode: Mode = args.mode
    prepared = prepare(args.workdir, args.data.resolve(), embedder, mode)
    best, cats = score(prepared, mode)
    print(f"start {best:.4f} {cats}")
    for round_ in range(args.rounds):
        for name, values in GRID.items():
            current = getter(name)
            results = []
            for value in values:
                setter(name)(value)
                results.append((score(prepared, mode)[0], value))
            top, value = max(results, key=lambda r: (round(r[0], 4), r[1] == current))
            if top > best + 1e-4:
                best = top
            else:
                value = current
            setter(name)(value)
            row = " ".join(f"{v}:{s:.3f}" for s, v in results)
            print(f"round {round_} {name:24} -> {value}  ({row})")
    best, cats = score(prepared, mode)
    print(f"best {best:.4f} {cats}")
    print({name: getter(name) for name in GRID})


if __name__ == "__main__":
    main()
