"""Code-search quality: NDCG@10 on semble's benchmark format, through the real indexer and
the real scry path, next to semble's and the baselines' published numbers.

Data: a directory with `repos.json`, `repos.tar.xz` (or the unpacked `<name>/` trees),
`annotations/<name>.json` and optionally `reference.json` (README.md there defines the
metric; this file implements it). Any repositories and annotations in that format work:
nothing here knows the eleven of the development set.

    .venv/bin/python -m bench.knowledge.code_search                 # hybrid, lexical, semantic
    .venv/bin/python -m bench.knowledge.code_search --modes hybrid --ablation
    .venv/bin/python -m bench.knowledge.code_search --cold           # + cold-process index time

Each repository's `benchmark_root` is indexed with `Indexer.index` (what `patina index`
runs) into its own index; every query goes through `KnowledgeService.scry` (what
`POST /api/scry` calls) with the route's defaults (limit 10, no filters).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench.knowledge.common import p50, percentile
from service.knowledge import search, store
from service.knowledge.config import KnowledgeSettings, RankingSettings
from service.knowledge.embedder import Embedder, TextEmbedder
from service.knowledge.graphs import GRAPHS
from service.knowledge.indexer import Indexer
from service.knowledge.lexical import FieldWeights
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.model import load_model_files
from service.knowledge.search import Hit, Mode, Query
from service.knowledge.service import KnowledgeService, index_path
from service.knowledge.static_embedder import StaticEmbedder
from service.settings import Settings

CATEGORIES = ("architecture", "semantic", "symbol")
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "bench-data" / "code-search"
REFERENCES = {
    "semble": "semble",
    "coderankembed_hybrid": "CodeRankEmbed hybrid",
    "bm25_raw": "raw BM25",
    "potion_semantic_raw": "raw potion static",
}
FEATURES = ("role_priors", "definitions", "names", "diversity")


# The metric --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    path: str
    start_line: int | None = None
    end_line: int | None = None


@dataclass(frozen=True)
class Case:
    query: str
    category: str
    targets: tuple[Target, ...]


def category_of(item: dict[str, Any]) -> str:
    """The item's category, or the README's rule when it has none."""
    if item.get("category"):
        return str(item["category"])
    query = str(item["query"])
    if " " not in query.strip():
        return "symbol"
    return "architecture" if query.lower().startswith("how ") else "semantic"


def load_cases(path: Path) -> list[Case]:
    cases = []
    for item in json.loads(path.read_text()):
        targets = []
        for raw in [*item.get("relevant", []), *item.get("secondary", [])]:
            if isinstance(raw, str):
                targets.append(Target(raw))
            else:
                targets.append(Target(raw["path"], raw.get("start_line"), raw.get("end_line")))
        cases.append(Case(item["query"], category_of(item), tuple(targets)))
    return cases


def same_path(a: str, b: str) -> bool:
    """The same path, or one of them ends with `/` + the other."""
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def found_at(target: Target, hits: list[tuple[str, int, int]]) -> int | None:
    """1-based rank of the first hit matching the target (path, and lines if given)."""
    for rank, (path, start, end) in enumerate(hits[:10], 1):
        if not same_path(path, target.path):
            continue
        first, last = target.start_line, target.end_line
        if first is not None and last is not None and (end < first or start > last):
            continue
        return rank
    return None


def ndcg10(case: Case, hits: list[tuple[str, int, int]]) -> float:
    dcg = sum(
        1 / math.log2(rank + 1)
        for rank in (found_at(t, hits) for t in case.targets)
        if rank is not None
    )
    ideal = sum(1 / math.log2(r + 1) for r in range(1, min(10, len(case.targets)) + 1))
    return dcg / ideal if ideal else 0.0


# Running ------------------------------------------------------------------------------------


@dataclass
class RepoRun:
    name: str
    root: Path
    settings: Settings
    chunks: int = 0
    code_chunks: int = 0
    files: int = 0
    index_seconds: float = 0.0
    reindex_seconds: float = 0.0
    # Until the chunks were committed: lexical and ranked answers from then on.
    ready_seconds: float = 0.0


@dataclass
class Scores:
    per_repo: dict[str, float]
    per_repo_category: dict[str, dict[str, float]]
    latencies_ms: list[float]
    per_query: list[tuple[str, Case, float, list[tuple[str, int, int]]]]

    def overall(self) -> float:
        return sum(self.per_repo.values()) / len(self.per_repo)

    def category(self, name: str) -> float | None:
        values = [c[name] for c in self.per_repo_category.values() if name in c]
        return sum(values) / len(values) if values else None


def unpack(data: Path, into: Path) -> Path:
    """The directory holding `<name>/` trees: the data dir itself or an unpacked tarball."""
    archive = data / "repos.tar.xz"
    if not archive.exists():
        return data
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def build(
    repo: dict[str, Any],
    trees: Path,
    work: Path,
    embedder: TextEmbedder,
    knowledge: KnowledgeSettings,
    *,
    rechunk: bool = False,
) -> RepoRun:
    """Index one repository's benchmark root into an index of its own."""
    root = trees / repo["name"] / (repo.get("benchmark_root") or "")
    settings = Settings(home=work / repo["name"], knowledge=knowledge)
    run = RepoRun(repo["name"], root, settings)
    conn = store.open_index(index_path(settings))
    try:
        if rechunk:
            conn.execute("UPDATE documents SET content_hash = ''")
        started = time.perf_counter()
        report = Indexer(conn, embedder, knowledge).index(root, repo=repo["name"])
        run.index_seconds = time.perf_counter() - started
        run.ready_seconds = report.lexical_seconds
        started = time.perf_counter()
        Indexer(conn, embedder, knowledge).index(root, repo=repo["name"])
        run.reindex_seconds = time.perf_counter() - started
        run.files = report.files_indexed
        run.chunks = store.counts(conn)[1]
        run.code_chunks = conn.execute(
            "SELECT count(*) FROM chunks WHERE role NOT IN ('docs', 'config', 'text')"
        ).fetchone()[0]
    finally:
        conn.close()
    return run


def ask(
    runs: list[RepoRun],
    cases: dict[str, list[Case]],
    embedder: TextEmbedder,
    *,
    mode: Mode,
    ranking: RankingSettings,
) -> Scores:
    per_repo: dict[str, float] = {}
    per_cat: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    per_query = []
    for run in runs:
        knowledge = run.settings.knowledge.model_copy(update={"ranking": ranking})
        settings = run.settings.model_copy(update={"knowledge": knowledge})
        svc = KnowledgeService(
            settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
        )
        try:
            svc.scry(Query("warm up", mode=mode))
            values: dict[str, list[float]] = defaultdict(list)
            for case in cases[run.name]:
                started = time.perf_counter()
                hits = svc.scry(Query(case.query, mode=mode, limit=10))
                latencies.append((time.perf_counter() - started) * 1000)
                listed = _listed(hits)
                score = ndcg10(case, listed)
                values[case.category].append(score)
                values["all"].append(score)
                per_query.append((run.name, case, score, listed))
        finally:
            svc.close()
        per_repo[run.name] = sum(values["all"]) / len(values["all"])
        per_cat[run.name] = {
            c: sum(values[c]) / len(values[c]) for c in CATEGORIES if values.get(c)
        }
    return Scores(per_repo, per_cat, latencies, per_query)


def _listed(hits: list[Hit]) -> list[tuple[str, int, int]]:
    return [(h.chunk.path, h.chunk.start_line, h.chunk.end_line) for h in hits]


def cold_index_seconds(root: Path, home: Path) -> float:
    """`patina index ROOT` in a fresh process with a fresh home: import, model load, index."""
    env = {**os.environ, "PATINA_HOME": str(home)}
    started = time.perf_counter()
    patina = Path(sys.executable).with_name("patina")  # the installed console script
    subprocess.run(
        [str(patina), "index", str(root)],
        check=True,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - started


# Printing -----------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "  -  "


def print_report(
    runs: list[RepoRun], results: dict[str, Scores], reference: dict[str, Any]
) -> None:
    names = [r.name for r in runs]
    refs = {
        label: key
        for key, label in REFERENCES.items()
        if all(key in reference.get(n, {}) for n in names)
    }
    header = f"{'':24} {'NDCG@10':>8} " + " ".join(f"{c:>12}" for c in CATEGORIES)
    print("\n" + header)
    for mode, scores in results.items():
        cats = " ".join(f"{fmt(scores.category(c)):>12}" for c in CATEGORIES)
        print(f"{'patina ' + mode:24} {scores.overall():8.3f} {cats}")
    for label, key in refs.items():
        overall = sum(reference[n][key]["ndcg10"] for n in names) / len(names)
        cats = " ".join(f"{fmt(_ref_category(reference, names, key, c)):>12}" for c in CATEGORIES)
        print(f"{label:24} {overall:8.3f} {cats}")
    print(
        f"\n{'repo':11} {'files':>5} {'chunks':>6} {'code':>5} {'semble':>6} {'ready s':>7} "
        f"{'index s':>7} "
        f"{'re-idx s':>8} " + " ".join(f"{m:>8}" for m in results) + " "
        + " ".join(f"{label.split()[0][:8]:>8}" for label in refs)
    )  # fmt: skip
    for run in runs:
        ref = reference.get(run.name, {})
        semble_chunks = ref.get("chunks_semble", "-")
        values = " ".join(f"{results[m].per_repo[run.name]:8.3f}" for m in results)
        ref_values = " ".join(f"{ref[k]['ndcg10']:8.3f}" for k in refs.values())
        print(
            f"{run.name:11} {run.files:5} {run.chunks:6} {run.code_chunks:5} "
            f"{semble_chunks!s:>6} {run.ready_seconds:7.2f} {run.index_seconds:7.2f} "
            f"{run.reindex_seconds:8.3f} "
            f"{values} {ref_values}"
        )
    print("\nquery latency in process (ms):")
    for mode, scores in results.items():
        print(
            f"  {mode:9} p50 {p50(scores.latencies_ms):6.2f}  "
            f"p99 {percentile(scores.latencies_ms, 99):6.2f}"
        )


def _ref_category(reference: dict[str, Any], names: list[str], key: str, cat: str) -> float:
    values = [
        reference[n][key]["by_category"][cat]
        for n in names
        if cat in reference[n][key].get("by_category", {})
    ]
    return sum(values) / len(values) if values else float("nan")


def print_misses(scores: Scores, limit: int) -> None:
    worst = sorted(scores.per_query, key=lambda item: item[2])[:limit]
    print(f"\nlowest {len(worst)} queries:")
    for repo, case, score, listed in worst:
        targets = ", ".join(t.path for t in case.targets)
        top = "; ".join(f"{p}:{s}-{e}" for p, s, e in listed[:4])
        print(f"  {repo:9} {case.category[:4]} {score:.2f} {case.query!r} -> {targets} | {top}")


# Main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repos", nargs="*", help="only these repositories")
    parser.add_argument("--modes", nargs="+", default=["hybrid", "lexical", "semantic"])
    parser.add_argument("--ablation", action="store_true", help="each ranking feature off")
    for feature in FEATURES:
        parser.add_argument(f"--no-{feature.replace('_', '-')}", action="store_true")
    parser.add_argument(
        "--cold", nargs="*", metavar="REPO", help="time `patina index` (all repos, or these)"
    )
    parser.add_argument("--misses", type=int, default=0, help="print the N worst queries")
    parser.add_argument("--workdir", type=Path, help="keep the unpacked trees and indexes")
    parser.add_argument(
        "--rechunk",
        action="store_true",
        help="with --workdir: re-chunk every file (vectors of unchanged chunk texts are reused)",
    )
    parser.add_argument(
        "--embedder", choices=["minilm", "static"], default="minilm", help="chunk/query vectors"
    )
    parser.add_argument("--static-cache", type=Path, help="where the static table is cached")
    parser.add_argument(
        "--query-graph",
        choices=GRAPHS,
        default=KnowledgeSettings().query_graph,
        help="the graph queries are embedded with (graphs.py)",
    )
    parser.add_argument(
        "--field-weights",
        nargs=4,
        type=float,
        metavar=("BODY", "SYMBOLS", "NAME", "PATH"),
        help="BM25 field weights instead of the tuned ones (1 0 0 0: body only)",
    )
    args = parser.parse_args()

    if args.field_weights:
        search.FIELD_WEIGHTS = FieldWeights(*args.field_weights)
    data = args.data.resolve()
    repos = json.loads((data / "repos.json").read_text())
    if args.repos:
        repos = [r for r in repos if r["name"] in args.repos]
    reference = {}
    if (data / "reference.json").exists():
        reference = json.loads((data / "reference.json").read_text()).get("repos", {})
    cases = {r["name"]: load_cases(data / "annotations" / f"{r['name']}.json") for r in repos}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="patina-code-search-"))
    work.mkdir(parents=True, exist_ok=True)
    trees = unpack(data, work / "trees")
    knowledge = KnowledgeSettings(query_graph=args.query_graph)
    print(f"{len(repos)} repositories, {sum(len(c) for c in cases.values())} queries; work {work}")

    started = time.perf_counter()
    embedder: TextEmbedder = Embedder.from_settings(knowledge, for_indexing=True)
    query_embedder: TextEmbedder = Embedder.from_settings(knowledge)
    if args.embedder == "static":
        files = load_model_files(knowledge)
        cache = args.static_cache or work / "static"
        embedder = query_embedder = StaticEmbedder.load_or_distill(
            Embedder(files, graph="fp32"), files.tokenizer_json, cache
        )
    print(
        f"{args.embedder} model ready in {time.perf_counter() - started:.1f}s "
        f"(chunks: {embedder.graph}, queries: {query_embedder.graph})"
    )
    runs = [
        build(r, trees, work / "indexes", embedder, knowledge, rechunk=args.rechunk) for r in repos
    ]

    ranking = RankingSettings(
        **{f: not getattr(args, f"no_{f}") for f in FEATURES}  # type: ignore[arg-type]
    )
    results = {
        mode: ask(runs, cases, query_embedder, mode=mode, ranking=ranking) for mode in args.modes
    }
    print_report(runs, results, reference)
    if args.misses:
        print_misses(results[args.modes[0]], args.misses)

    if args.ablation:
        mode = args.modes[0]
        base = results[mode]
        print(f"\nablation ({mode}): NDCG@10 with one ranking feature off")
        print(f"  {'all on':22} {base.overall():.3f} " + _cats(base))
        for feature in FEATURES:
            variant = ranking.model_copy(update={feature: False})
            scores = ask(runs, cases, query_embedder, mode=mode, ranking=variant)
            delta = scores.overall() - base.overall()
            print(f"  {feature + ' off':22} {scores.overall():.3f} ({delta:+.3f}) " + _cats(scores))
        none = RankingSettings(**dict.fromkeys(FEATURES, False))  # type: ignore[arg-type]
        scores = ask(runs, cases, query_embedder, mode=mode, ranking=none)
        print(f"  {'all off':22} {scores.overall():.3f} " + _cats(scores))

    if args.cold is not None:
        print("\ncold `patina index` (fresh process and home):")
        for run in runs:
            if args.cold and run.name not in args.cold:
                continue
            seconds = cold_index_seconds(run.root, work / "cold" / run.name)
            print(f"  {run.name:11} {seconds:6.2f}s  (warm in-process {run.index_seconds:.2f}s)")


def _cats(scores: Scores) -> str:
    return " ".join(f"{c[:4]} {fmt(scores.category(c))}" for c in CATEGORIES)


if __name__ == "__main__":
    main()
