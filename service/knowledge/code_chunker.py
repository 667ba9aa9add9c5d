"""Definition-aware chunks of source code, from a tree-sitter syntax tree.

1. The file's top-level nodes become units: a definition (function, class, type, constant;
   its name is recorded as a symbol), an import (imports, `use`, re-exports), a comment, or
   other code. Comments and attributes directly above a definition belong to it.
2. A unit larger than the size limit is opened: a class, namespace or impl block gives a
   header unit (its signature, which carries its name) and one unit per member; a long
   function gives its signature and its statements. Inside function bodies only nested
   functions and classes count as definitions (a local `x = 1` defines nothing).
3. Neighbouring units are packed into chunks up to the size limit, so a file of small
   functions makes a few chunks rather than dozens; imports are packed only with imports,
   so an import header never hides inside (or outranks) the code it precedes.

Lines between units (blank lines, closing braces) go with the unit before them, so every
line of the file lands in exactly one chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import tree_sitter

from service.knowledge.languages import SPECS, LanguageSpec, parser_for

MAX_SYMBOLS = 32
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
# Nodes whose names are values rather than declarations: they count only at module or
# class level, never inside a function body.
_VALUE_DEFINITIONS = frozenset(
    [
        "expression_statement",
        "lexical_declaration",
        "variable_declaration",
        "assignment",
        "declaration",
        "var_declaration",
        "const_declaration",
        "property_declaration",
        "field_declaration",
        "val_definition",
        "var_definition",
        "variable_assignment",
        "const_item",
        "static_item",
        "field_definition",
        "public_field_definition",
        "preproc_def",
        "property_signature",
    ]
)
# A scope whose members are declarations (unlike a function body, whose members are steps).
# Scopes whose members belong to a type (and are recorded as `Type.member`).
_TYPE_WORDS = (
    "class", "struct", "interface", "trait", "impl", "object", "protocol", "record", "enum",
    "extension", "union",
)  # fmt: skip
_SCOPE_WORDS = (
    "class", "interface", "trait", "struct", "enum", "module", "namespace", "impl", "object",
    "protocol", "record", "mod_item", "extension", "preproc", "linkage", "foreign_mod",
    "ambient", "export", "decorated", "template_declaration",
)  # fmt: skip
_NAME_HOLDERS = frozenset(
    [
        "type_spec",
        "type_alias",
        "const_spec",
        "var_spec",
        "variable_declarator",
        "const_element",
        "variable_declaration",
        "assignment",
        "property_element",
        "init_declarator",
    ]
)
_IDENT_TYPES = frozenset(
    [
        "identifier",
        "type_identifier",
        "simple_identifier",
        "constant",
        "field_identifier",
        "property_identifier",
        "name",
        "word",
        "variable_name",
    ]
)
_FUNCTION_VALUES = frozenset(
    [
        "function",
        "function_expression",
        "arrow_function",
        "class",
        "class_expression",
        "generator_function",
        "call_expression",
    ]
)


_LOADERS = frozenset({"require", "require_relative", "load", "source", "."})
_BODY_WORDS = ("body", "block", "declaration_list", "statement_list")
_STRINGS = frozenset({"string", "template_string", "concatenated_string", "string_literal"})
# A chunk smaller than this is merged into a neighbour (a lone `__all__`, a module
# docstring, a one-line constant): on its own it matches every word it has, and says little.
TINY_CHARS = 160


@dataclass
class Unit:
    """A run of lines [start, end) (0-based) and what it holds."""

    start: int
    end: int
    kind: str  # definition | imports | comment | code
    symbols: list[str] = field(default_factory=list)
    test: bool = False


@dataclass(frozen=True)
class CodePiece:
    """One chunk of a source file: 0-based lines [start, end), what it defines, its role."""

    start: int
    end: int
    symbols: tuple[str, ...]
    role: str  # definition | imports | code | test


def parse_units(
    text: str, language: str, max_chars: int, *, path: str = ""
) -> list[CodePiece] | None:
    """Chunk `text` (of the file `path`) with the grammar `language`; None when the grammar
    is unavailable."""
    parser = parser_for(language)
    if parser is None:
        return None
    data = text.encode("utf-8")
    tree = parser.parse(data)
    lines = text.split("\n")
    builder = _Builder(SPECS[language], data, max_chars, path)
    units = builder.units(tree.root_node.named_children, in_function=False)
    return _pack(_contiguous(_attach_comments(units), len(lines)), lines, max_chars)


class _Builder:
    def __init__(self, spec: LanguageSpec, data: bytes, max_chars: int, path: str) -> None:
        self.spec = spec
        self.data = data
        self.max_chars = max_chars
        # A Python package's `__init__.py` imports in order to re-export.
        self.package_init = path.rsplit("/", 1)[-1] == "__init__.py"

    def text(self, node: tree_sitter.Node) -> str:
        return self.data[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def units(self, nodes: list[tree_sitter.Node], *, in_function: bool) -> list[Unit]:
        out: list[Unit] = []
        for node in nodes:
            out.extend(self.unit(node, in_function=in_function))
        return out

    def unit(self, node: tree_sitter.Node, *, in_function: bool) -> list[Unit]:
        spec, kind = self.spec, node.type
        start, end = node.start_point.row, node.end_point.row + 1
        if kind in spec.comments or self.is_docstring(node):
            return [Unit(start, end, "comment")]
        exported = self.exported_names(node)
        if exported is not None:
            return [Unit(start, end, "exports", exported)]
        if kind in spec.imports or self.is_reexport(node):
            return [Unit(start, end, "imports")]
        big = node.end_byte - node.start_byte > self.max_chars
        defines = kind in spec.definitions and not (in_function and kind in _VALUE_DEFINITIONS)
        grouping = kind in spec.wrappers or kind in spec.containers or kind == "ERROR"
        if not (defines or grouping):
            if big and node.named_child_count:  # a long statement: chunk its parts
                return self.units(node.named_children, in_function=in_function)
            return [Unit(start, end, "code")]
        names = self.names(node) if defines or kind in spec.wrappers else []
        test = self.is_test(node, names)
        scope = grouping or any(w in kind for w in _SCOPE_WORDS)
        members = self.members(node)
        if kind in spec.containers and not members:
            return [Unit(start, end, "imports")]  # `namespace App;`: a header, like imports
        inner = self.units(members, in_function=in_function or not scope) if members else []
        owner = self.owner(node, names)
        if owner:  # a type's members are named after it: `Router.add_route`
            for unit in inner:
                unit.symbols = [s if "." in s else f"{owner}.{s}" for s in unit.symbols]
        # Namespaces and impl blocks are always opened (they define nothing themselves);
        # a definition is opened only when it is too large to be one chunk.
        opened = members and (big or (grouping and kind not in spec.wrappers))
        if not opened:
            if scope:  # a small class defines its members' names too
                names = list(dict.fromkeys([*names, *(n for u in inner for n in u.symbols)]))
            return [Unit(start, end, "definition" if names else "code", names[:MAX_SYMBOLS], test)]
        # A header (signature, attributes) carrying the name, then the members.
        header_end = max(start + 1, min((u.start for u in inner), default=end))
        head = Unit(start, header_end, "definition" if names else "code", names, test)
        for member in inner:
            member.start = max(member.start, header_end)
            member.test = member.test or test
        return [head, *[u for u in inner if u.end > u.start]]

    def owner(self, node: tree_sitter.Node, names: list[str]) -> str | None:
        """The type whose members `node` holds: a class's, a struct's, an impl block's."""
        kind = node.type
        if kind in self.spec.wrappers or not any(w in kind for w in _TYPE_WORDS):
            return None
        if names:
            return names[0]
        target = node.child_by_field_name("type")  # Rust `impl Trait for Type`
        return _first_identifier(self.text(target)) if target is not None else None

    def members(self, node: tree_sitter.Node) -> list[tree_sitter.Node]:
        """The children worth chunking separately: a body's statements or declarations."""
        spec = self.spec
        if node.type in spec.wrappers or node.type == "ERROR":
            return list(node.named_children)
        body = node.child_by_field_name("body") or node.child_by_field_name("definition")
        if body is None:
            bodies = [c for c in node.named_children if any(w in c.type for w in _BODY_WORDS)]
            if bodies:
                body = bodies[-1]
            elif node.type in spec.containers:  # `#ifdef X ... #endif`: members are children
                return [c for c in node.named_children if not _is_name(c)]
            else:
                return []
        if body.type in spec.definitions or body.type in spec.wrappers:
            return [body]
        return list(body.named_children)

    def is_docstring(self, node: tree_sitter.Node) -> bool:
        """A statement that is only a string: a docstring, `'use strict'`."""
        return (
            node.type == "expression_statement"
            and node.named_child_count == 1
            and node.named_children[0].type in _STRINGS
        )

    def exported_names(self, node: tree_sitter.Node) -> list[str] | None:
        """The names a re-export statement makes public (`pub use a::{B, C}`,
        `export { B } from "./b"`, an `__init__.py`'s imports and `__all__`), or None
        when the node re-exports nothing."""
        kind = node.type
        if kind == "use_declaration" and any(
            c.type == "visibility_modifier" for c in node.named_children
        ):
            body = self.text(node).split("use", 1)[1]
            return _listed_names(body.replace("{", ",").replace("}", ","), "::")
        if kind == "export_statement" and self.is_reexport(node):
            text = self.text(node)
            clause = text[text.find("{") + 1 : text.find("}")] if "{" in text else ""
            alias = re.search(r"\*\s+as\s+([A-Za-z_$][\w$]*)", text)
            return _listed_names(clause, ".") + ([alias.group(1)] if alias else [])
        if not self.package_init:
            return None
        if kind == "import_from_statement":
            text = self.text(node)
            return _listed_names(text.split(" import ", 1)[-1].strip("() \n"), ".")
        if kind == "expression_statement" and self.text(node).startswith("__all__"):
            return re.findall(r"[\"']([A-Za-z_]\w*)[\"']", self.text(node))
        return None

    def is_reexport(self, node: tree_sitter.Node) -> bool:
        """Statements that only bring names in: `export * from "x"`, `export { a }`,
        `const x = require("x")`, Ruby's `require`, shell's `source`, Rust's `mod x;`."""
        kind = node.type
        if kind in ("lexical_declaration", "variable_declaration"):
            values = [d.child_by_field_name("value") for d in node.named_children]
            return bool(values) and all(
                v is not None and self.text(v).startswith("require(") for v in values
            )
        if kind in ("call", "command"):
            head = node.child_by_field_name("method") or node.child_by_field_name("name")
            return head is not None and self.text(head) in _LOADERS
        if kind == "export_statement":
            return node.child_by_field_name("declaration") is None and (
                node.child_by_field_name("source") is not None
                or any(c.type == "export_clause" for c in node.named_children)
            )
        if kind == "mod_item":
            return node.child_by_field_name("body") is None
        return False

    def is_test(self, node: tree_sitter.Node, names: list[str]) -> bool:
        """An inline test module (Rust's `#[cfg(test)] mod tests`)."""
        return node.type == "mod_item" and bool(names) and names[0] in ("test", "tests")

    # Names -------------------------------------------------------------------------------

    def names(self, node: tree_sitter.Node) -> list[str]:
        found = [n for n in self._names(node) if n and not _is_dunder(n)]
        return list(dict.fromkeys(found))[:MAX_SYMBOLS]

    def _names(self, node: tree_sitter.Node) -> list[str]:
        spec, kind = self.spec, node.type
        if kind in spec.wrappers:
            inner = node.child_by_field_name("declaration") or node.child_by_field_name(
                "definition"
            )
            kids = [inner] if inner is not None else node.named_children
            return [
                n
                for k in kids
                if k.type in spec.definitions or k.type in spec.wrappers
                for n in self._names(k)
            ]
        if kind in spec.containers or kind == "ERROR":
            return []
        if kind == "expression_statement":
            return self.assigned_names(node)
        name = node.child_by_field_name("name")
        if name is not None:
            receiver = node.child_by_field_name("receiver")  # Go: `func (m *Mux) Use()`
            if receiver is not None and receiver.named_children:
                kind_node = receiver.named_children[0].child_by_field_name("type")
                owner = _first_identifier(self.text(kind_node)) if kind_node else None
                if owner:
                    return [f"{owner}.{_last_identifier(self.text(name))}"]
            return [_last_identifier(self.text(name))]
        declarator = node.child_by_field_name("declarator")
        if declarator is not None:
            return [self.declarator_name(declarator)]
        held = [
            n for c in node.named_children if c.type in _NAME_HOLDERS for n in self.held_name(c)
        ]
        if held:
            return held
        left = node.child_by_field_name("left")
        if left is not None:  # Ruby `CONSTANT = ...`, shell `VAR=...`
            return [self.text(left)] if left.type in ("constant", "variable_name") else []
        for child in node.named_children:
            if child.type in _IDENT_TYPES:
                return [self.text(child)]
        return []

    def held_name(self, node: tree_sitter.Node) -> list[str]:
        name = node.child_by_field_name("name") or node.child_by_field_name("left")
        if name is None:
            name = next((c for c in node.named_children if c.type in _IDENT_TYPES), None)
        if name is None or name.type not in _IDENT_TYPES:
            return []
        return [self.text(name)]

    def declarator_name(self, node: tree_sitter.Node) -> str:
        # C and C++: function_declarator -> pointer_declarator -> ... -> identifier.
        while (inner := node.child_by_field_name("declarator")) is not None:
            node = inner
        name = node.child_by_field_name("name") or node
        return _last_identifier(self.text(name))

    def assigned_names(self, node: tree_sitter.Node) -> list[str]:
        """Module-level `NAME = ...` (Python) and `obj.name = function ...` (JavaScript)."""
        if not node.named_children:
            return []
        inner = node.named_children[0]
        left, right = inner.child_by_field_name("left"), inner.child_by_field_name("right")
        if left is None:
            return []
        if inner.type == "assignment":  # Python
            return [self.text(n) for n in _flatten(left) if n.type == "identifier"]
        if inner.type == "assignment_expression" and right and right.type in _FUNCTION_VALUES:
            return [_last_identifier(self.text(left))]
        return []


def _listed_names(text: str, separator: str) -> list[str]:
    """`a::B, c::D as E` -> [B, E]: the last segment (or alias) of each listed path."""
    names = []
    for item in text.split(","):
        item = item.strip().rstrip(";").strip()
        if " as " in item:
            item = item.rsplit(" as ", 1)[1]
        name = item.rsplit(separator, 1)[-1].strip()
        if _IDENT.fullmatch(name) and name not in ("self", "super", "crate", "default"):
            names.append(name)
    return names[:MAX_SYMBOLS]


def _flatten(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    if node.type == "identifier":
        return [node]
    return [n for c in node.named_children for n in _flatten(c)]


def _is_name(node: tree_sitter.Node) -> bool:
    return node.type in _IDENT_TYPES or node.type.endswith(("identifier", "_name"))


def _first_identifier(text: str) -> str | None:
    found = _IDENT.findall(text)
    return found[0] if found else None


def _last_identifier(text: str) -> str:
    found = _IDENT.findall(text)
    return found[-1] if found else ""


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _attach_comments(units: list[Unit]) -> list[Unit]:
    """Comments (and attributes) right above a definition become part of it."""
    out: list[Unit] = []
    pending: list[Unit] = []
    for unit in sorted(units, key=lambda u: (u.start, u.end)):
        if unit.kind == "comment":
            if pending and pending[-1].end < unit.start:
                out.extend(pending)
                pending = []
            pending.append(unit)
            continue
        if pending and pending[-1].end >= unit.start and unit.kind == "definition":
            unit.start = pending[0].start
        else:
            out.extend(pending)
        pending = []
        out.append(unit)
    out.extend(pending)
    return sorted(out, key=lambda u: (u.start, u.end))


def _contiguous(units: list[Unit], n_lines: int) -> list[Unit]:
    """Make units tile the file: no overlaps, gaps joined to the unit before them."""
    out: list[Unit] = []
    for unit in units:
        if out and unit.start < out[-1].end:
            unit.start = out[-1].end
        if unit.end <= unit.start:
            # Swallowed by its neighbour (one-line nodes sharing a line): keep its facts.
            if out:
                out[-1].symbols.extend(unit.symbols)
                out[-1].test = out[-1].test or unit.test
                if unit.kind == "definition":
                    out[-1].kind = "definition"
            continue
        out.append(unit)
    for before, after in zip(out, out[1:], strict=False):
        before.end = after.start
    if out:
        out[0].start = 0
        out[-1].end = max(out[-1].end, n_lines)
    return out


def _pack(units: list[Unit], lines: list[str], max_chars: int) -> list[CodePiece]:
    """Merge neighbouring units up to `max_chars` (imports and exports only with each
    other), then fold chunks smaller than TINY_CHARS into a neighbour that has room."""
    sizes = [0]
    for line in lines:
        sizes.append(sizes[-1] + len(line) + 1)

    def size(group: list[Unit]) -> int:
        return sizes[group[-1].end] - sizes[group[0].start]

    groups: list[list[Unit]] = []
    for unit in units:
        if groups:
            current = groups[-1]
            kinds = {_group(current), _group([unit])}
            # Comments go with anything; imports only with imports.
            if size([*current, unit]) <= max_chars and (len(kinds) == 1 or "comment" in kinds):
                current.append(unit)
                continue
        groups.append([unit])
    tiny = min(TINY_CHARS, max_chars // 4)
    merged: list[list[Unit]] = []
    for group in groups:
        if merged and (size(group) < tiny or size(merged[-1]) < tiny):
            tests = {_group(group) == "test", _group(merged[-1]) == "test"}
            if size([*merged[-1], *group]) <= max_chars and len(tests) == 1:
                merged[-1].extend(group)
                continue
        merged.append(group)
    return [_piece(group) for group in merged]


def _group(units: list[Unit]) -> str:
    """What may share a chunk: headers (imports, exports) together, inline tests
    together, other code together; comments join any of them."""
    if any(u.test for u in units):
        return "test"
    kinds = {u.kind for u in units} - {"comment"}
    if not kinds:
        return "comment"
    return "header" if kinds <= {"imports", "exports"} else "code"


def _piece(units: list[Unit]) -> CodePiece:
    symbols = list(dict.fromkeys(s for u in units for s in u.symbols))[:MAX_SYMBOLS]
    kinds = {u.kind for u in units}
    if any(u.test for u in units):
        role = "test"
    elif "definition" in kinds and any(u.symbols for u in units if u.kind == "definition"):
        role = "definition"
    elif "exports" in kinds and symbols:
        role = "exports"
    elif kinds <= {"imports", "exports", "comment"} and kinds & {"imports", "exports"}:
        role = "imports"
    else:
        role = "code"
    return CodePiece(units[0].start, units[-1].end, tuple(symbols), role)
