"""Which tree-sitter grammar parses a file, and what its definitions and imports look like.

Each grammar comes from its own PyPI wheel (`tree-sitter-python`, `tree-sitter-go`, ...),
which bundles the compiled parser: nothing is fetched at run time. A grammar is imported
only when a file of its language is first chunked, and parsers are cached per thread
(a tree-sitter Parser is not safe to share between threads).

The node-type sets below name, per language, the nodes that define something (their name
becomes a chunk's symbol), the nodes that only bring names in (imports, re-exports), and the
nodes whose members deserve chunks of their own when the whole is too large (classes,
namespaces, impl blocks).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

import tree_sitter


@dataclass(frozen=True)
class LanguageSpec:
    """How to read one language's syntax tree."""

    name: str
    module: str
    loader: str = "language"
    definitions: frozenset[str] = frozenset()
    # Nodes that wrap one definition and lend it their span (decorators, `export`, templates).
    wrappers: frozenset[str] = frozenset()
    # Namespaces, impl blocks and the like: grouping nodes that define no name themselves.
    containers: frozenset[str] = frozenset()
    imports: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset({"comment"})


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_C_DEFS = (
    "function_definition struct_specifier union_specifier enum_specifier type_definition "
    "declaration preproc_def preproc_function_def"
)
_C_CONTAINERS = "preproc_ifdef preproc_if preproc_else preproc_elif linkage_specification"
_JS_DEFS = (
    "function_declaration generator_function_declaration class_declaration class "
    "lexical_declaration variable_declaration method_definition field_definition"
)
_TS_DEFS = (
    f"{_JS_DEFS} abstract_class_declaration interface_declaration type_alias_declaration "
    "enum_declaration internal_module module function_signature method_signature "
    "abstract_method_signature public_field_definition property_signature"
)

SPECS: dict[str, LanguageSpec] = {
    spec.name: spec
    for spec in (
        LanguageSpec(
            "python",
            "tree_sitter_python",
            definitions=_set("function_definition class_definition expression_statement"),
            wrappers=_set("decorated_definition"),
            imports=_set("import_statement import_from_statement future_import_statement"),
        ),
        LanguageSpec(
            "javascript",
            "tree_sitter_javascript",
            definitions=_set(f"{_JS_DEFS} expression_statement"),
            wrappers=_set("export_statement"),
            imports=_set("import_statement"),
        ),
        LanguageSpec(
            "typescript",
            "tree_sitter_typescript",
            loader="language_typescript",
            definitions=_set(f"{_TS_DEFS} expression_statement"),
            wrappers=_set("export_statement ambient_declaration"),
            imports=_set("import_statement import_alias"),
        ),
        LanguageSpec(
            "tsx",
            "tree_sitter_typescript",
            loader="language_tsx",
            definitions=_set(f"{_TS_DEFS} expression_statement"),
            wrappers=_set("export_statement ambient_declaration"),
            imports=_set("import_statement import_alias"),
        ),
        LanguageSpec(
            "go",
            "tree_sitter_go",
            definitions=_set(
                "function_declaration method_declaration type_declaration const_declaration "
                "var_declaration"
            ),
            imports=_set("import_declaration package_clause"),
        ),
        LanguageSpec(
            "rust",
            "tree_sitter_rust",
            definitions=_set(
                "function_item function_signature_item struct_item enum_item union_item "
                "trait_item mod_item macro_definition const_item static_item type_item"
            ),
            containers=_set("impl_item foreign_mod_item"),
            imports=_set("use_declaration extern_crate_declaration"),
            comments=_set("line_comment block_comment attribute_item inner_attribute_item"),
        ),
        LanguageSpec(
            "java",
            "tree_sitter_java",
            definitions=_set(
                "class_declaration interface_declaration enum_declaration record_declaration "
                "annotation_type_declaration method_declaration constructor_declaration "
                "field_declaration constant_declaration"
            ),
            imports=_set("import_declaration package_declaration"),
            comments=_set("line_comment block_comment"),
        ),
        LanguageSpec(
            "kotlin",
            "tree_sitter_kotlin",
            definitions=_set(
                "class_declaration object_declaration function_declaration property_declaration "
                "type_alias companion_object secondary_constructor"
            ),
            imports=_set("import import_list import_header package_header"),
            comments=_set("line_comment block_comment"),
        ),
        LanguageSpec(
            "c",
            "tree_sitter_c",
            definitions=_set(_C_DEFS),
            containers=_set(_C_CONTAINERS),
            imports=_set("preproc_include"),
        ),
        LanguageSpec(
            "cpp",
            "tree_sitter_cpp",
            definitions=_set(
                f"{_C_DEFS} class_specifier field_declaration alias_declaration concept_definition"
            ),
            wrappers=_set("template_declaration"),
            containers=_set(f"{_C_CONTAINERS} namespace_definition"),
            imports=_set("preproc_include using_declaration"),
        ),
        LanguageSpec(
            "csharp",
            "tree_sitter_c_sharp",
            definitions=_set(
                "class_declaration interface_declaration struct_declaration record_declaration "
                "enum_declaration delegate_declaration method_declaration "
                "constructor_declaration property_declaration field_declaration "
                "event_declaration operator_declaration"
            ),
            containers=_set("namespace_declaration file_scoped_namespace_declaration"),
            imports=_set("using_directive extern_alias_directive"),
        ),
        LanguageSpec(
            "ruby",
            "tree_sitter_ruby",
            definitions=_set("method singleton_method class module assignment singleton_class"),
            imports=_set(""),
        ),
        LanguageSpec(
            "php",
            "tree_sitter_php",
            loader="language_php",
            definitions=_set(
                "function_definition class_declaration interface_declaration "
                "trait_declaration enum_declaration method_declaration const_declaration "
                "property_declaration"
            ),
            containers=_set("namespace_definition"),
            imports=_set("namespace_use_declaration php_tag"),
        ),
        LanguageSpec(
            "swift",
            "tree_sitter_swift",
            definitions=_set(
                "class_declaration protocol_declaration function_declaration init_declaration "
                "property_declaration typealias_declaration protocol_function_declaration "
                "subscript_declaration"
            ),
            imports=_set("import_declaration"),
            comments=_set("comment multiline_comment"),
        ),
        LanguageSpec(
            "scala",
            "tree_sitter_scala",
            definitions=_set(
                "class_definition object_definition trait_definition enum_definition "
                "function_definition function_declaration val_definition var_definition "
                "type_definition given_definition"
            ),
            containers=_set("package_object"),
            imports=_set("import_declaration package_clause export_declaration"),
            comments=_set("comment block_comment"),
        ),
        LanguageSpec(
            "bash",
            "tree_sitter_bash",
            definitions=_set("function_definition variable_assignment"),
        ),
    )
}

_SUFFIXES: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".kts": "kotlin",
    ".c": "c", ".h": "cpp", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp",
    ".hh": "cpp", ".hxx": "cpp", ".ipp": "cpp", ".cs": "csharp",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby", ".php": "php", ".swift": "swift",
    ".scala": "scala", ".sc": "scala", ".sh": "bash", ".bash": "bash", ".bats": "bash",
}  # fmt: skip
# C headers go to the C++ grammar: it parses C as well, and C++ headers are common.
_NAMES: dict[str, str] = {"Rakefile": "ruby", "Gemfile": "ruby", "Podfile": "ruby"}


def language_of(path: str) -> str | None:
    """The grammar name for a file, or None when no bundled grammar parses it."""
    pure = PurePosixPath(path)
    return _NAMES.get(pure.name) or _SUFFIXES.get(pure.suffix.lower())


_local = threading.local()
_languages: dict[str, tree_sitter.Language] = {}
_languages_lock = threading.Lock()


def _language(spec: LanguageSpec) -> tree_sitter.Language:
    with _languages_lock:
        language = _languages.get(spec.name)
        if language is None:
            module = importlib.import_module(spec.module)
            load: Callable[[], object] = getattr(module, spec.loader)
            language = tree_sitter.Language(load())
            _languages[spec.name] = language
        return language


def parser_for(name: str) -> tree_sitter.Parser | None:
    """This thread's parser for the language `name`, or None if its grammar is missing
    (the caller then chunks the file without a syntax tree)."""
    parsers: dict[str, tree_sitter.Parser | None] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    if name not in parsers:
        spec = SPECS.get(name)
        try:
            parsers[name] = tree_sitter.Parser(_language(spec)) if spec else None
        except (ImportError, AttributeError, ValueError):
            parsers[name] = None
    return parsers[name]
