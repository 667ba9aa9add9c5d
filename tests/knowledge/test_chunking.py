"""Chunking: markdown by headings, code by top-level definitions, text by paragraphs."""

from __future__ import annotations

from service.knowledge.chunking import ChunkLimits, chunk_document, kind_of


def test_markdown_is_split_at_headings_but_not_inside_code_fences() -> None:
    text = (
        "# Title\nintro\n\n## Part one\nbody one\n"
        "```\n# comment, not a heading\n```\n## Part two\nbody two\n"
    )
    chunks = chunk_document("guide.md", text)
    assert [c.text.splitlines()[0] for c in chunks] == ["# Title", "## Part one", "## Part two"]
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 3), (4, 8), (9, 10)]
    assert {c.kind for c in chunks} == {"markdown"}


def test_python_is_split_at_top_level_definitions_with_their_decorators() -> None:
    text = (
        "import os\n\n\n@decorator\ndef first():\n    return 1\n\n\n"
        "class Second:\n    def method(self):\n        pass\n\nVALUE = 3\n"
    )
    chunks = chunk_document("mod.py", text)
    spans = {c.text.splitlines()[0]: (c.start_line, c.end_line) for c in chunks}
    assert spans["@decorator"] == (4, 6)
    assert spans["class Second:"] == (9, 11)
    assert "import os" in spans
    assert "VALUE = 3" in spans
    assert all(c.event_type == "code.definition" for c in chunks)


def test_other_languages_split_at_definition_keywords() -> None:
    text = "use x;\n\n/// Doc comment\npub fn one() {}\n\nfn two() {\n    body();\n}\n"
    chunks = chunk_document("lib.rs", text)
    firsts = [c.text.splitlines()[0] for c in chunks]
    assert firsts == ["use x;", "/// Doc comment", "fn two() {"]


def test_long_spans_become_overlapping_line_windows() -> None:
    text = "\n".join(f"line {i} " + "x" * 40 for i in range(1, 201))
    limits = ChunkLimits(max_chars=1500, window_lines=30, overlap=5)
    chunks = chunk_document("data.py", text, limits)
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


def test_kind_follows_the_file_name() -> None:
    assert kind_of("a/README.md") == "markdown"
    assert kind_of("src/x.ts") == "code"
    assert kind_of("Makefile") == "code"
    assert kind_of("LICENSE") == "text"


def test_empty_and_blank_documents_give_no_chunks() -> None:
    for name in ("empty.py", "empty.md", "empty.txt", "empty.rs"):
        assert chunk_document(name, "") == []
        assert chunk_document(name, "\n\n  \n") == []
