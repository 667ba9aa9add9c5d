"""(b) Indexing throughput (chunks/s) next to raw batched embedding, and peak memory.

Both phases run in their own child process on the same files, alternating, so each peak
RSS is its own and machine noise hits both. The raw phase embeds exactly the chunk texts
the indexer produces (chunked beforehand, untimed) with one `Embedder.embed` call.

    .venv/bin/python -m bench.knowledge.index_bench [--rounds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sysconfig
import tempfile
import time
from pathlib import Path
from queue import Empty

STDLIB_DIRS = ["json", "wsgiref", "concurrent", "urllib"]


def make_corpus(dest: Path) -> Path:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in STDLIB_DIRS:
        shutil.copytree(stdlib / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def phase(kind: str, corpus: str, home: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from service.knowledge import store
    from service.knowledge.chunking import ChunkLimits, chunk_document
    from service.knowledge.config import KnowledgeSettings
    from service.knowledge.embedder import Embedder
    from service.knowledge.indexer import Indexer, decode_text
    from service.knowledge.walker import Skipped, Tree

    knowledge = KnowledgeSettings()
    # As `patina index` does (the int8 graph); the floor uses the very same session.
    embedder = Embedder.from_settings(knowledge, for_indexing=True)
    if kind == "raw":
        texts: list[str] = []
        with Tree(Path(corpus).resolve()) as tree:
            for rel in list(tree.files()):
                try:
                    text = decode_text(tree.read(rel, max_bytes=knowledge.max_file_bytes).data)
                except Skipped:
                    continue
                if text is not None:
                    texts += [c.text for c in chunk_document(rel, text, ChunkLimits())]
        texts = list(dict.fromkeys(texts))  # the indexer embeds each distinct text once
        started = time.perf_counter()
        embedder.embed(texts)
        seconds = time.perf_counter() - started
        count = len(texts)
    else:
        conn = store.open_index(Path(home) / "index.sqlite")
        started = time.perf_counter()
        report = Indexer(conn, embedder, knowledge).index(Path(corpus))
        seconds = time.perf_counter() - started
        count = report.chunks_embedded
        conn.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((kind, count, seconds, peak_mib))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="patina-index-bench-"))
    corpus = make_corpus(tmp / "corpus")
    ctx = mp.get_context("spawn")
    results: dict[str, list[tuple[int, float, float]]] = {"raw": [], "index": []}
    for r in range(args.rounds):
        for kind in ("raw", "index"):
            home = tmp / f"home-{kind}-{r}"
            home.mkdir()
            queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
            proc = ctx.Process(target=phase, args=(kind, str(corpus), str(home), queue))
            proc.start()
            while True:  # a child that crashed must not leave us waiting forever
                try:
                    _kind, count, seconds, peak = queue.get(timeout=1)
                    break
                except Empty:
                    if not proc.is_alive():
                        raise SystemExit(f"{kind} phase failed") from None
            proc.join()
            results[kind].append((count, seconds, peak))
            print(f"round {r + 1} {kind:5}: {count} chunks in {seconds:.1f}s = "
                  f"{count / seconds:.1f} chunks/s, peak RSS {peak:.0f} MiB")  # fmt: skip
    raw = max(c / s for c, s, _p in results["raw"])
    idx = max(c / s for c, s, _p in results["index"])
    print(f"\nbest raw embedding {raw:.1f} chunks/s, best indexing {idx:.1f} chunks/s, "
          f"ratio {idx / raw:.2f}x (target >= 0.85x)")  # fmt: skip
    print(f"peak RSS: raw {max(p for *_x, p in results['raw']):.0f} MiB, "
          f"index {max(p for *_x, p in results['index']):.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
