"""Start-up of the `patina mcp` process: leave out the import-time work it never uses.

An agent spawns `patina mcp` for every session and waits for its first answer, so what the
process imports before it can answer is paid on each start. Two libraries do far more on
import than this process needs, and neither offers a lighter entry point:

* The MCP SDK's package `__init__` modules (`mcp`, `mcp.server`) import the whole SDK up
  front: its clients (with their own HTTP stack) and the high-level MCPServer framework,
  about a fifth of the SDK's import time. The stdio bridge uses only the low-level server
  and the stdio transport, which name every module they need explicitly.
* httpx imports its command-line tool (`httpx._main`) on import, and with it rich and
  pygments, when they are installed (they are: typer's extras).

`skip_unused_imports()` registers the SDK's two packages without running their `__init__`
and marks httpx's CLI module as absent (httpx then defines a stand-in `main`). It changes
this one process only: `patina mcp` is called through `service.cli.main`, which calls this
before it imports anything else. A later `from mcp import X` in this process would fail
loudly (ImportError), never behave differently; nothing on the stdio path does one.
"""

from __future__ import annotations

import importlib.util
import sys

# Parents first: finding `mcp.server` looks in the registered `mcp`.
SDK_PACKAGES = ("mcp", "mcp.server")


def skip_unused_imports() -> None:
    """Register the SDK's packages without their `__init__` and keep httpx's CLI module
    out, unless they are imported already (then there is nothing left to save)."""
    if "mcp" not in sys.modules:
        for name in SDK_PACKAGES:
            _register_bare_package(name)
    if "httpx" not in sys.modules:
        # None in sys.modules makes `import httpx._main` raise ImportError, which httpx
        # catches to define a stand-in for its CLI entry point.
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def _register_bare_package(name: str) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed as a package: the ordinary import reports it
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)
