"""(a) scry p50/p99 per mode at 10k and 100k chunks, next to a bare-script floor.

The index holds real text (line windows of the Python standard library's sources) so the
FTS5 vocabulary and posting lists are realistic; its vectors are random unit vectors,
because embedding 100k chunks takes hours on 2 cores and a matrix product costs the same
whatever the values. Queries are real (docstring first lines) and embedded for real, by the
service and by the floor alike. The floor does, in the same process and run, exactly the
query's work with nothing around it: the ONNX embedding of the query, the FTS5 MATCH
(the same prepared expression) and the numpy matrix-vector product with top-k.

    .venv/bin/python -m bench.knowledge.scry_bench [--sizes 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from bench.knowledge.common import library_functions, p50, percentile
from bench.knowledge.eval import MODULES
from service.knowledge import store
from service.knowledge.config import KnowledgeSettings
from service.knowledge.embedder import Embedder
from service.knowledge.lexical import FieldWeights, chunk_terms, prepare_match
from service.knowledge.metrics import KnowledgeMetrics
from service.knowledge.search import Query
from service.knowledge.service import KnowledgeService, index_path
from service.settings import Settings

DEPTH = 100  # per-mode candidates, as the service fetches for ranking


def stdlib_windows(count: int, lines_per_chunk: int = 12) -> list[tuple[str, str]]:
    """(path, text) windows of stdlib sources, cycling if the library runs out."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[tuple[str, str]] = []
    files = sorted(p for p in root.rglob("*.py") if "test" not in p.parts)
    while len(out) < count:
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (UnicodeDecodeError, OSError):
                continue
            for start in range(0, len(lines), lines_per_chunk):
                text = "\n".join(lines[start : start + lines_per_chunk]).strip()
                if text:
                    out.append((f"{path.relative_to(root)}#{start}", text))
                if len(out) >= count:
                    return out
    return out


def build_index(path: Path, count: int, rng: np.random.Generator) -> None:
    conn = store.open_index(path)
    chunks = stdlib_windows(count)
    vectors = rng.standard_normal((count, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with store.transaction(conn):
        for i, (name, text) in enumerate(chunks):
            if i % 100 == 0:
                doc = conn.execute(
                    "INSERT INTO documents(repo, root, path, kind, content_hash, timestamp, "
                    "indexed_at) VALUES ('bench', '/bench', ?, 'code', '', '', 0)",
                    (f"doc{i}",),
                ).lastrowid
            terms = chunk_terms(name, text, ())
            cur = conn.execute(
                "INSERT INTO chunks(document_id, repo, path, kind, event_type, source_id, "
                "timestamp, start_line, end_line, content, text_hash, role, terms, "
                "symbol_terms, name_terms, path_terms) VALUES "
                "(?, 'bench', ?, 'code', 'code.definition', ?, '', 1, 12, ?, '', 'code', "
                "?, ?, ?, ?)",
                (doc, name, name, text, terms.terms, terms.symbol_terms, terms.name_terms,
                 terms.path_terms),
            )  # fmt: skip
            conn.execute("INSERT INTO vectors VALUES (?, ?)", (cur.lastrowid, vectors[i].tobytes()))
        store.bump_generation(conn)
    conn.execute("PRAGMA optimize")
    conn.close()


def run(size: int, queries: list[str], embedder: Embedder, tmp: Path) -> None:
    settings = Settings(home=tmp / f"n{size}", knowledge=KnowledgeSettings())
    started = time.perf_counter()
    build_index(index_path(settings), size, np.random.default_rng(size))
    print(f"\n{size} chunks (built in {time.perf_counter() - started:.0f}s)")
    svc = KnowledgeService(
        settings, embedder=embedder, metrics=KnowledgeMetrics(CollectorRegistry())
    )
    snap = svc._snapshot
    conn = store.connect(index_path(settings))
    matches = [
        prepare_match(conn, q, total=snap.size, max_df_ratio=0.2, max_terms=16) for q in queries
    ]
    service_ms: dict[str, list[float]] = {"lexical": [], "semantic": [], "hybrid": []}
    floor_ms: dict[str, list[float]] = {"lexical": [], "semantic": [], "hybrid": []}
    for rep in range(2):  # the first pass warms caches and is discarded
        for q, match in zip(queries, matches, strict=True):
            for mode in ("lexical", "semantic", "hybrid"):
                t0 = time.perf_counter()
                svc.scry(Query(q, mode=mode, limit=10))  # type: ignore[arg-type]
                t1 = time.perf_counter()
                # The floor: the same retrieval by a bare script (DEPTH candidates per mode,
                # as the service fetches for its ranking stage); no ranking.
                depth = DEPTH
                if mode in ("lexical", "hybrid") and match is not None:
                    conn.execute(
                        f"SELECT rowid, {FieldWeights().sql()} AS score FROM code_fts "
                        "WHERE code_fts MATCH ? ORDER BY score LIMIT ?",
                        (match, depth),
                    ).fetchall()
                if mode in ("semantic", "hybrid"):
                    v = embedder.embed([q])[0]
                    scores = snap.matrix @ v
                    top = np.argpartition(-scores, depth)[:depth]
                    top[np.argsort(-scores[top])]
                t2 = time.perf_counter()
                if rep:
                    service_ms[mode].append((t1 - t0) * 1000)
                    floor_ms[mode].append((t2 - t1) * 1000)
    print(
        f"  {'mode':9} {'p50 ms':>8} {'p99 ms':>8} {'floor p50':>10} {'floor p99':>10} "
        f"{'p50 ratio':>10}"
    )
    for mode in ("lexical", "semantic", "hybrid"):
        s, f = service_ms[mode], floor_ms[mode]
        print(
            f"  {mode:9} {p50(s):8.2f} {percentile(s, 99):8.2f} {p50(f):10.2f} "
            f"{percentile(f, 99):10.2f} {p50(s) / p50(f):9.2f}x"
        )
    conn.close()
    svc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    queries = [item.query for item in library_functions(MODULES, limit=args.queries)]
    embedder = Embedder.from_settings(KnowledgeSettings())
    tmp = Path(tempfile.mkdtemp(prefix="patina-scry-bench-"))
    print(f"{len(queries)} queries x 3 modes, service vs floor interleaved per query")
    for size in args.sizes:
        run(size, queries, embedder, tmp)


if __name__ == "__main__":
    main()
