"""One running service with remo's admin socket and four project sockets."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.support.process import ServiceProcess, short_tmp_dir

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "remo-wire.schema.json"

# Tripwire values: they may appear in a `get` answer to an allowed caller, nowhere else.
ALPHA_VALUE = "ghp_TRIPWIREalpha0123456789abcdefABCDEF"
BETA_VALUE = "npm_TRIPWIREbeta0123456789abcdefABCDEF"
SHARED_VALUE = "shared-TRIPWIRE-value-4f9a"


@dataclass
class RemoService:
    service: ServiceProcess

    @property
    def admin(self) -> Path:
        return self.service.admin_socket

    def project(self, name: str) -> Path:
        return self.service.run_dir / f"{name}.sock"

    def audit(self) -> list[dict[str, Any]]:
        path = self.service.home / "data" / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def wait_audit(self, **match: Any) -> list[dict[str, Any]]:
        """Audit events matching every field of `match`, once at least one is written."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = [e for e in self.audit() if all(e.get(k) == v for k, v in match.items())]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no audit event {match}: {self.audit()}")


PROJECTS = [
    {"name": "alpha", "allowlist": ["GITHUB_TOKEN", "SHARED"], "mode": "0660"},
    {"name": "beta", "allowlist": ["NPM_TOKEN", "SHARED"]},
    # A tight rate limit, to see rate_limited.
    {"name": "gamma", "allowlist": ["SHARED"], "max_gets_per_minute": 2},
    # Nobody real is allowed: our own uid is unexpected here.
    {"name": "delta", "allowlist": ["SHARED"], "allowed_uids": [os.getuid() + 4242]},
]


@pytest.fixture(scope="module")
def remo() -> Iterator[RemoService]:
    home = short_tmp_dir("remo")
    env = {"PATINA_REMO__ENABLED": "true", "PATINA_REMO__PROJECTS": json.dumps(PROJECTS)}
    service = ServiceProcess(home=home, env=env)
    try:
        service.start()
        yield RemoService(service)
    finally:
        service.kill()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def wire_schema() -> dict[str, Any]:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    assert isinstance(schema, dict)
    return schema


def conforms(schema: dict[str, Any], kind: str, message: dict[str, Any]) -> list[str]:
    """The schema's complaints about `message` as a `kind` ($defs name); [] when valid."""
    sub = {"$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"}
    return [error.message for error in Draft202012Validator(sub).iter_errors(message)]
