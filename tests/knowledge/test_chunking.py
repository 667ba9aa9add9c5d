"""Chunking of prose and text: markdown by headings, text by paragraphs, windows for long
spans. (Code: test_code_chunking.py.)"""

from __future__ import annotations

from service.knowledge.chunking import ChunkLimits, chunk_document, kind_of


def test_markdown_is_split_at_headings_but_not_inside_code_fences() -> None:
    text = (
        "# Title\nintro\n\n## Part one\nbody one\n"
        "```\n# comment, not a heading\n```\n## Part two\nbody two\n"
    )
    chunks = chunk_document("guide.md", text)
    assert [c.text.splitlines()[0] for c in chunks] == ["# Title", "## Part one", "## Part two"]
    # Blank lines at either end are trimmed from a chunk's span.
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 2), (4, 8), (9, 10)]
    assert {c.kind for c in chunks} == {"markdown"}
    assert {c.role for c in chunks} == {"docs"}


def test_long_spans_become_overlapping_line_windows() -> None:
    text = "\n".join(f"line {i} " + "x" * 40 for i in range(1, 201))
    limits = ChunkLimits(max_chars=1500, window_lines=30, overlap=5)
    chunks = chunk_document("data.txt", text, limits)
    assert len(chunks) > 5
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start_line <= before.end_line  # neighbours overlap
        assert after.start_line > before.start_line
    assert chunks[0].start_line == 1
    assert chunks[-1].end_line == 200
    assert all(len(c.text) <= 1500 for c in chunks)


def test_text_is_split_into_paragraphs() -> None:
    para = "word " * 100
    text = f"{para}\n\n{para}\n\n\n{para}\n"
    chunks = chunk_document("notes.txt", text)
    assert len(chunks) == 3
    assert [c.start_line for c in chunks] == [1, 3, 6]
    assert {c.event_type for c in chunks} == {"text.paragraph"}
    assert {c.role for c in chunks} == {"text"}


def test_configuration_is_chunked_as_text_with_the_config_role() -> None:
    text = '{\n  "name": "shop",\n  "version": "1.0.0"\n}\n'
    chunks = chunk_document("package.json", text)
    assert [(c.role, c.kind, c.symbols) for c in chunks] == [("config", "code", ())]


def test_kind_follows_the_file_name() -> None:
    assert kind_of("a/README.md") == "markdown"
    assert kind_of("src/x.ts") == "code"
    assert kind_of("Makefile") == "code"
    assert kind_of("LICENSE") == "text"


def test_empty_and_blank_documents_give_no_chunks() -> None:
    for name in ("empty.py", "empty.md", "empty.txt", "empty.rs"):
        assert chunk_document(name, "") == []
        assert chunk_document(name, "\n\n  \n") == []
