"""What a file is for, from the conventions most codebases share: tests, examples, docs,
configuration. Nothing here knows any particular project.

* Tests: a directory named like `test`, `tests`, `__tests__`, `spec`, `testdata`,
  `test_suite`, `fixtures`, `__snapshots__`, ...; or a file whose name starts or ends with
  `test`/`spec` as an identifier part (`test_app.py`, `app_test.go`, `AppTest.java`,
  `app.spec.ts`, `app_spec.rb`, `AppTests.swift`), `conftest.py`, `*.snap`.
* Examples: a directory named like `example(s)`, `_examples`, `demo(s)`, `sample(s)`,
  `tutorial(s)`, `docs_src`, `cookbook`, `benches`/`benchmarks`.
* Docs: markdown, reStructuredText, AsciiDoc, org; README, CHANGELOG, LICENSE and friends.
* Config: JSON, YAML, TOML, INI, XML, lock files, build files (Makefile, Dockerfile, ...).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from service.knowledge.tokens import split_identifier

TEST_WORDS = frozenset({"test", "tests", "spec", "specs"})
_TEST_DIRS = frozenset(
    {"testing", "testdata", "fixtures", "fixture", "snapshots", "mocks", "e2e", "testutil"}
)
_EXAMPLE_WORDS = frozenset(
    {
        "example", "examples", "demo", "demos", "sample", "samples", "tutorial", "tutorials",
        "cookbook", "bench", "benches", "benchmark", "benchmarks",
    }
)  # fmt: skip
_EXAMPLE_DIRS = frozenset({"docssrc", "doc", "docs"})
DOC_SUFFIXES = frozenset({".md", ".markdown", ".mdx", ".rst", ".adoc", ".asciidoc", ".org"})
_DOC_STEMS = frozenset(
    {"readme", "changelog", "changes", "history", "license", "licence", "copying", "notice",
     "authors", "contributors", "contributing", "security", "codeofconduct", "news"}
)  # fmt: skip
CONFIG_SUFFIXES = frozenset(
    {
        ".json", ".jsonc", ".json5", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf",
        ".xml", ".properties", ".lock", ".plist", ".editorconfig", ".gradle", ".mk",
        ".cmake", ".tf", ".tfvars", ".env", ".sum", ".mod",
    }
)  # fmt: skip
_CONFIG_NAMES = frozenset(
    {
        "makefile", "dockerfile", "containerfile", "justfile", "cmakelists.txt", "gemfile",
        "procfile", "vagrantfile", ".gitignore", ".gitattributes", ".dockerignore",
        ".npmignore", ".prettierrc", ".eslintrc", ".babelrc", "requirements.txt",
    }
)  # fmt: skip


def _dir_words(path: PurePosixPath) -> list[tuple[str, list[str]]]:
    """(directory name squashed to lower case, its identifier parts) for each directory."""
    out = []
    for part in path.parts[:-1]:
        parts = split_identifier(part)
        out.append(("".join(parts), parts))
    return out


def is_test_path(path: str) -> bool:
    """Does the path follow a test convention (test directory or test file name)?"""
    pure = PurePosixPath(path)
    for whole, parts in _dir_words(pure):
        if whole in _TEST_DIRS or (parts and (parts[0] in TEST_WORDS or parts[-1] in TEST_WORDS)):
            return True
    name = pure.name.lower()
    if name == "conftest.py" or name.endswith((".snap", ".snapshot")):
        return True
    # `app.spec.ts` and `app_test.go` alike: the stem's first or last identifier part.
    stem_parts = split_identifier(pure.name.split(".", 1)[0] if "." in pure.name else pure.name)
    stem_parts += [p for s in pure.name.split(".")[1:-1] for p in split_identifier(s)]
    if len(stem_parts) == 1:
        return stem_parts[0] in ("test", "tests")  # `spec.go` may well be code
    return bool(stem_parts) and (stem_parts[0] in TEST_WORDS or stem_parts[-1] in TEST_WORDS)


def is_example_path(path: str) -> bool:
    """Is the file under an examples/demos/samples/benchmarks directory (or code in docs)?"""
    for whole, parts in _dir_words(PurePosixPath(path)):
        if whole in _EXAMPLE_DIRS or any(p in _EXAMPLE_WORDS for p in parts):
            return True
    return False


def is_doc_path(path: str) -> bool:
    """Prose documentation: by suffix, or a README/CHANGELOG/LICENSE-style name."""
    pure = PurePosixPath(path)
    if pure.suffix.lower() in DOC_SUFFIXES:
        return True
    if pure.suffix.lower() not in ("", ".txt"):
        return False  # `security.py` is code, `SECURITY` and `LICENSE.txt` are not
    stem = "".join(split_identifier(pure.name.split(".", 1)[0]))
    return stem in _DOC_STEMS


def is_config_path(path: str) -> bool:
    """Configuration, data and build files."""
    pure = PurePosixPath(path)
    name = pure.name.lower()
    return (
        pure.suffix.lower() in CONFIG_SUFFIXES
        or name in _CONFIG_NAMES
        or name.startswith(("dockerfile", "requirements"))
    )


def file_role(path: str) -> str | None:
    """`test`, `docs`, `config` or `example` when a convention says so, else None (then
    the chunk's own content decides: definition, imports or code)."""
    if is_test_path(path):
        return "test"
    if is_doc_path(path):
        return "docs"
    if is_config_path(path):
        return "config"
    if is_example_path(path):
        return "example"
    return None
