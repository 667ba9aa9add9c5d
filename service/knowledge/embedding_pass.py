"""The second indexing phase: give every chunk that has none its vector.

The indexer commits chunks (and so BM25 search over them) first; this pass embeds what it
left without a vector, a group at a time, each group committed on its own. Readers see
every committed group at once, and never wait for the model: embedding happens outside
write transactions. Whoever runs it (`patina index` in the foreground, the service in the
background) leaves the same index, and two passes at once only waste work (a chunk keeps
the first vector it got).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from service.cancel import Cancel
from service.knowledge import store
from service.knowledge.embedder import TextEmbedder

# Chunks embedded per committed group: large enough for full batches, small enough that
# readers see progress every few seconds and the texts held stay a few hundred kB.
GROUP = 256

Progress = Callable[[str, int, int], None]


def embed_pending(
    conn: sqlite3.Connection,
    embedder: TextEmbedder,
    *,
    cancel: Cancel | None = None,
    progress: Progress | None = None,
    group: int = GROUP,
) -> int:
    """Embed every chunk without a vector (also those added while it runs); returns how
    many chunks got one. Reports ("vectors", done, total) after each group."""
    report = progress or (lambda stage, done, total: None)
    total = store.unembedded_count(conn)
    done = 0
    after = 0
    report("vectors", 0, total)
    while True:
        if cancel is not None:
            cancel.raise_if_cancelled()
        rows = store.unembedded(conn, after=after, limit=group)
        if not rows:
            break
        after = rows[-1][0]
        # Equal texts (a licence header, a copied file) are embedded once.
        unique = list(dict.fromkeys(text for _id, text in rows))
        vectors = embedder.embed(unique, cancel=cancel)
        by_text = {text: store.vector_blob(vectors[i]) for i, text in enumerate(unique)}
        store.add_vectors(conn, [(chunk_id, by_text[text]) for chunk_id, text in rows])
        done += len(rows)
        total = max(total, done)
        report("vectors", done, total)
    return done
