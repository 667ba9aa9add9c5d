"""Definition-aware chunking with a real parser for each supported language."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.knowledge.chunking import ROLES, Chunk, ChunkLimits, chunk_document
from service.knowledge.languages import SPECS, language_of, parser_for

# (file name, source, names it defines, a line of its import block or None)
SOURCES: list[tuple[str, str, set[str], str | None]] = [
    (
        "app.py",
        (
            "import os\n"
            "from x import y\n"
            "\n"
            "\n"
            '@route("/")\n'
            "def handle_request(req):\n"
            "    return 1\n"
            "\n"
            "\n"
            "class Router(Base):\n"
            "    def add_route(self, path):\n"
            "        pass\n"
            "\n"
            "\n"
            "MAX_ROUTES = 10\n"
        ),
        {"MAX_ROUTES", "Router", "Router.add_route", "handle_request"},
        "import os",
    ),
    (
        "app.js",
        (
            'const http = require("http");\n'
            'import { x } from "./x";\n'
            "\n"
            "function handleRequest(req) {\n"
            "  return 1;\n"
            "}\n"
            "\n"
            "class Router {\n"
            "  addRoute(path) {}\n"
            "}\n"
            "\n"
            "app.render = function render(view) {\n"
            "  return view;\n"
            "};\n"
        ),
        {"Router", "Router.addRoute", "handleRequest", "render"},
        'const http = require("http");',
    ),
    (
        "app.ts",
        (
            'import { x } from "./x";\n'
            'export * from "./y";\n'
            "\n"
            "export interface Options {\n"
            "  strict: boolean;\n"
            "}\n"
            "\n"
            "export class ZodType<T> {\n"
            "  parse(input: unknown): T {\n"
            "    return input as T;\n"
            "  }\n"
            "}\n"
            "\n"
            "export const makeSchema = (x: number) => x;\n"
            "export type Alias = string;\n"
        ),
        {"Alias", "Options", "Options.strict", "ZodType", "ZodType.parse", "makeSchema"},
        'import { x } from "./x";',
    ),
    (
        "view.tsx",
        (
            'import React from "react";\n'
            "\n"
            "export function Button(props: Props) {\n"
            "  return <button>{props.label}</button>;\n"
            "}\n"
        ),
        {"Button"},
        'import React from "react";',
    ),
    (
        "mux.go",
        (
            "package chi\n"
            "\n"
            "import (\n"
            '\t"net/http"\n'
            ")\n"
            "\n"
            "// Mux is a router.\n"
            "type Mux struct {\n"
            "\tx int\n"
            "}\n"
            "\n"
            "func NewMux() *Mux {\n"
            "\treturn nil\n"
            "}\n"
            "\n"
            "func (mx *Mux) Use(h http.Handler) {}\n"
        ),
        {"Mux", "Mux.Use", "NewMux"},
        "package chi",
    ),
    (
        "de.rs",
        (
            "use std::fmt;\n"
            "mod inner;\n"
            "\n"
            "/// A data structure that can be deserialized.\n"
            "pub trait Deserialize<'de>: Sized {\n"
            "    fn deserialize();\n"
            "}\n"
            "\n"
            "impl Visitor {\n"
            "    pub fn visit_str(&self) {}\n"
            "}\n"
            "\n"
            "pub struct Visitor;\n"
            "\n"
            "macro_rules! forward {\n"
            "    () => {};\n"
            "}\n"
        ),
        {"Deserialize", "Deserialize.deserialize", "Visitor", "Visitor.visit_str", "forward"},
        "use std::fmt;",
    ),
    (
        "Router.java",
        (
            "package com.example;\n"
            "import java.util.List;\n"
            "\n"
            "/** Routes requests. */\n"
            "public class Router {\n"
            "    private int size;\n"
            "    public void addRoute(String path) {}\n"
            "}\n"
        ),
        {"Router", "Router.addRoute", "Router.size"},
        "package com.example;",
    ),
    (
        "Router.kt",
        (
            "package com.example\n"
            "import java.util.List\n"
            "\n"
            "class Router {\n"
            "    fun addRoute(path: String) {}\n"
            "}\n"
            "\n"
            "fun topLevel() {}\n"
            "\n"
            "object Registry {\n"
            "    val routes = 1\n"
            "}\n"
        ),
        {"Registry", "Registry.routes", "Router", "Router.addRoute", "topLevel"},
        "package com.example",
    ),
    (
        "router.c",
        (
            "#include <stdio.h>\n"
            "#define MAX_ROUTES 10\n"
            "\n"
            "struct route {\n"
            "    int id;\n"
            "};\n"
            "\n"
            "static int add_route(struct route *r) {\n"
            "    return r->id;\n"
            "}\n"
        ),
        {"MAX_ROUTES", "add_route", "route"},
        "#include <stdio.h>",
    ),
    (
        "router.cpp",
        (
            "#include <vector>\n"
            "\n"
            "namespace web {\n"
            "class Router {\n"
            " public:\n"
            "  void addRoute(int id) {}\n"
            "};\n"
            "\n"
            "template <typename T> T pick(T a) { return a; }\n"
            "}\n"
        ),
        {"Router", "Router.addRoute", "pick"},
        "#include <vector>",
    ),
    (
        "Router.cs",
        (
            "using System;\n"
            "\n"
            "namespace Web {\n"
            "  public class Router {\n"
            "    public void AddRoute(string path) { }\n"
            "    public int Count { get; set; }\n"
            "  }\n"
            "  public interface IHandler { void Handle(); }\n"
            "}\n"
        ),
        {"IHandler", "IHandler.Handle", "Router", "Router.AddRoute", "Router.Count"},
        "using System;",
    ),
    (
        "router.rb",
        (
            "require 'json'\n"
            "\n"
            "module Web\n"
            "  class Router\n"
            "    def add_route(path)\n"
            "      path\n"
            "    end\n"
            "  end\n"
            "end\n"
            "\n"
            "MAX_ROUTES = 10\n"
        ),
        {"MAX_ROUTES", "Router", "Router.add_route", "Web"},
        "require 'json'",
    ),
    (
        "Router.php",
        (
            "<?php\n"
            "namespace App\\Http;\n"
            "use Foo\\Bar;\n"
            "\n"
            "class Router extends Bar {\n"
            "    public function addRoute($path) { return $path; }\n"
            "}\n"
            "\n"
            "function helper() {}\n"
        ),
        {"Router", "Router.addRoute", "helper"},
        "<?php",
    ),
    (
        "Router.swift",
        (
            "import Foundation\n"
            "\n"
            "/// Routes requests.\n"
            "public class Router {\n"
            "    func addRoute(path: String) {}\n"
            "}\n"
            "\n"
            "protocol Handler {\n"
            "    func handle()\n"
            "}\n"
            "\n"
            "func topLevel() {}\n"
        ),
        {"Handler", "Handler.handle", "Router", "Router.addRoute", "topLevel"},
        "import Foundation",
    ),
    (
        "Router.scala",
        (
            "package web\n"
            "import scala.collection.mutable\n"
            "\n"
            "class Router {\n"
            "  def addRoute(path: String): Unit = ()\n"
            "}\n"
            "\n"
            "object Registry {\n"
            "  val routes = 1\n"
            "}\n"
            "\n"
            "trait Handler\n"
        ),
        {"Handler", "Registry", "Registry.routes", "Router", "Router.addRoute"},
        "package web",
    ),
    (
        "install.sh",
        (
            "#!/bin/bash\n"
            "source ./lib.sh\n"
            "\n"
            "install_package() {\n"
            '  echo "installing"\n'
            "}\n"
            "\n"
            "function cleanup {\n"
            "  rm -rf /tmp/x\n"
            "}\n"
        ),
        {"cleanup", "install_package"},
        "source ./lib.sh",
    ),
]


def _ids(params: list[tuple[str, str, set[str], str | None]]) -> list[str]:
    return [p[0] for p in params]


def test_every_listed_language_has_a_bundled_grammar() -> None:
    for name in SPECS:
        assert parser_for(name) is not None, name


@pytest.mark.parametrize(("path", "source", "names", "imports"), SOURCES, ids=_ids(SOURCES))
def test_definitions_are_recorded_as_symbols(
    path: str, source: str, names: set[str], imports: str | None
) -> None:
    assert language_of(path) is not None
    chunks = chunk_document(path, source)
    found = {s for c in chunks for s in c.symbols}
    assert names <= found
    assert all(c.role == "definition" for c in chunks if c.symbols)


@pytest.mark.parametrize(("path", "source", "names", "imports"), SOURCES, ids=_ids(SOURCES))
def test_small_limits_give_a_chunk_per_definition_and_imports_apart(
    path: str, source: str, names: set[str], imports: str | None
) -> None:
    chunks = chunk_document(path, source, ChunkLimits(max_chars=40))
    if imports is not None:
        head = next(c for c in chunks if imports in c.text.split("\n"))
        assert head.role == "imports"
        assert not head.symbols
    for chunk in chunks:
        assert len(chunk.symbols) <= 2 or len(chunk.text) > 40, chunk


@pytest.mark.parametrize(("path", "source", "names", "imports"), SOURCES, ids=_ids(SOURCES))
def test_every_line_lands_in_exactly_one_chunk(
    path: str, source: str, names: set[str], imports: str | None
) -> None:
    for limits in (ChunkLimits(), ChunkLimits(max_chars=40)):
        chunks = chunk_document(path, source, limits)
        covered = [line for c in chunks for line in range(c.start_line, c.end_line + 1)]
        if limits.max_chars > 40:  # tiny limits cut leaves into overlapping windows
            assert len(covered) == len(set(covered))
        lines = source.split("\n")
        for number, line in enumerate(lines, 1):
            if line.strip():
                assert number in covered, (number, line)
        for chunk in chunks:
            assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])


def test_a_large_class_is_opened_into_its_header_and_methods() -> None:
    methods = "".join(f"    def method_{i}(self):\n        return {i}\n\n" for i in range(40))
    source = f"class Big:\n    '''A big class.'''\n\n{methods}"
    chunks = chunk_document("big.py", source, ChunkLimits(max_chars=300))
    assert chunks[0].symbols[0] == "Big"
    assert chunks[0].start_line == 1
    assert len(chunks) > 5
    defined = [s for c in chunks for s in c.symbols]
    assert [f"Big.method_{i}" for i in range(40)] == [s for s in defined if s != "Big"]


def test_names_inside_a_function_body_are_not_definitions() -> None:
    body = "".join(f"    value_{i} = compute({i})\n" for i in range(60))
    source = f"def long_function():\n{body}    return value_0\n"
    chunks = chunk_document("long.py", source, ChunkLimits(max_chars=400))
    assert chunks[0].symbols == ("long_function",)
    assert all(not c.symbols for c in chunks[1:])
    assert all(c.role == "code" for c in chunks[1:])


def test_reexports_are_exports_that_name_what_they_export() -> None:
    ts = 'export * from "./a";\nexport { b, c as d } from "./b";\nexport { e };\n'
    [barrel] = chunk_document("index.ts", ts)
    assert (barrel.role, barrel.symbols) == ("exports", ("b", "d", "e"))
    py = "from .a import A\nfrom .b import B as C\n\n__all__ = ['A', 'C']\n"
    [init] = chunk_document("pkg/__init__.py", py)
    assert (init.role, init.symbols) == ("exports", ("A", "C"))
    rs = "pub mod a;\npub use a::{A, b::B};\nuse std::fmt;\n"
    [module] = chunk_document("src/mod.rs", rs)
    assert (module.role, module.symbols) == ("exports", ("A", "B"))


def test_plain_imports_are_imports_and_define_nothing() -> None:
    py = "import os\nfrom .a import A\n"
    [head] = chunk_document("pkg/module.py", py)
    assert (head.role, head.symbols) == ("imports", ())
    rs = "use std::fmt;\nmod inner;\n"
    [head] = chunk_document("src/lib.rs", rs)
    assert (head.role, head.symbols) == ("imports", ())


def test_an_inline_rust_test_module_is_a_test() -> None:
    source = "pub fn add() {}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() {}\n}\n"
    chunks = chunk_document("lib.rs", source, ChunkLimits(max_chars=20))
    roles = {c.text.splitlines()[0]: c.role for c in chunks}
    assert roles["pub fn add() {}"] == "definition"
    assert roles["#[cfg(test)]"] == "test"


def test_test_and_example_paths_set_the_role_of_every_chunk() -> None:
    source = "def test_route():\n    assert True\n"
    assert {c.role for c in chunk_document("tests/test_routes.py", source)} == {"test"}
    assert {c.role for c in chunk_document("examples/basic.py", source)} == {"example"}


def test_broken_code_still_chunks_every_line() -> None:
    source = "def ok():\n    return 1\n\ndef broken(:\n    ???\n\nclass Fine:\n    pass\n"
    chunks: list[Chunk] = chunk_document("broken.py", source, ChunkLimits(max_chars=30))
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    assert {1, 2, 4, 5, 7, 8} <= covered
    assert "ok" in {s for c in chunks for s in c.symbols}


def test_languages_without_a_grammar_fall_back_to_keywords() -> None:
    source = "local x = 1\n\nfunction render(view)\n  return view\nend\n"
    chunks = chunk_document("view.lua", source)
    assert language_of("view.lua") is None
    assert any("render" in c.symbols for c in chunks)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(
        alphabet=st.sampled_from(list("abcXYZ_019 (){}[]<>;:=,.'\"#/*\\\n\t$@!?-+")), max_size=400
    ),
    name=st.sampled_from([s[0] for s in SOURCES] + ["x.lua", "x.md", "x.json", "x.txt"]),
)
def test_any_text_in_any_language_chunks_without_error(text: str, name: str) -> None:
    lines = text.split("\n")
    for limits in (ChunkLimits(), ChunkLimits(max_chars=200)):
        for chunk in chunk_document(name, text, limits):
            assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
            assert chunk.text.strip()
            assert chunk.role in ROLES
