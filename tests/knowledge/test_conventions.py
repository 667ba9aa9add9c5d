"""What a file is for, by conventions shared across languages (never by project names)."""

from __future__ import annotations

import pytest

from service.knowledge.conventions import file_role


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_app.py", "app/test_routes.py", "app/routes_test.py", "mux_test.go",
        "src/test/java/AppTest.java", "AppTests.cs", "RouterTests.swift", "router.spec.ts",
        "router.test.tsx", "lib/router_spec.rb", "__tests__/router.js", "test_suite/ser.rs",
        "pkg/testdata/input.go", "conftest.py", "src/__snapshots__/a.ts.snap", "FooSpec.scala",
        "tests/fixtures/config.json", "spec/models/user_spec.rb",
    ],
)  # fmt: skip
def test_test_files_are_recognised(path: str) -> None:
    assert file_role(path) == "test"


@pytest.mark.parametrize(
    "path",
    ["latest.go", "contest.py", "fastapi/testclient.py", "attestation.rs", "spec.go", "src/app.ts"],
)
def test_names_that_merely_contain_test_are_code(path: str) -> None:
    assert file_role(path) is None


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("README.md", "docs"), ("docs/guide.rst", "docs"), ("LICENSE", "docs"),
        ("CHANGELOG", "docs"), ("security.py", None), ("package.json", "config"),
        ("config/app.yaml", "config"), ("Cargo.toml", "config"), ("go.mod", "config"),
        ("Makefile", "config"), ("Dockerfile.dev", "config"), ("_examples/rest/main.go", "example"),
        ("examples/basic.py", "example"), ("docs_src/tutorial/app.py", "example"),
        ("benches/parse.rs", "example"), ("src/middleware/cors.go", None),
    ],
)  # fmt: skip
def test_docs_config_and_examples_are_recognised(path: str, role: str | None) -> None:
    assert file_role(path) == role
