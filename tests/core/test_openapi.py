"""The committed OpenAPI document matches the app, and a client generated from it works
against the real service over the Unix socket."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import httpx

from service.cli.openapi_cmd import openapi_document
from tests.support.process import running_service

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))


def test_committed_openapi_matches_the_app() -> None:
    committed = json.loads((ROOT / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_document())), (
        "openapi.json is stale: run `make openapi` and commit it"
    )


def test_spec_has_bearer_security_error_models_and_stable_operation_ids() -> None:
    spec = openapi_document()
    schemes = spec["components"]["securitySchemes"]  # type: ignore[index]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    assert "ErrorBody" in spec["components"]["schemas"]  # type: ignore[index]
    operation_ids = [
        op["operationId"]
        for path in spec["paths"].values()  # type: ignore[attr-defined]
        for op in path.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert "health" in operation_ids
    # Stable, readable ids: the handler's name, never FastAPI's path-and-method default
    # (e.g. `health_health_get`), so moving a route does not rename client methods.
    assert all(op.count("_") <= 3 for op in operation_ids)
    metrics = spec["paths"]["/metrics"]["get"]  # type: ignore[index]
    assert metrics["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


def test_generated_client_calls_the_service_over_the_socket(short_tmp: Path) -> None:
    # With --meta none the output path is the importable package itself.
    package = short_tmp / "patina_generated_client"
    subprocess.run(
        [
            GENERATOR,
            "generate",
            "--path",
            str(ROOT / "openapi.json"),
            "--output-path",
            str(package),
            "--meta",
            "none",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(short_tmp))
    try:
        client_mod = importlib.import_module("patina_generated_client.client")
        health_api = importlib.import_module("patina_generated_client.api.service.health")
        with running_service(home=short_tmp / "home") as service:
            client = client_mod.Client(
                base_url="http://patina.local",
                httpx_args={"transport": httpx.HTTPTransport(uds=str(service.socket))},
            )
            with client:
                health = health_api.sync(client=client)
        assert health is not None
        assert health.status == "ok"
        assert health.version
    finally:
        sys.path.remove(str(short_tmp))
        for name in list(sys.modules):
            if name.startswith("patina_generated_client"):
                del sys.modules[name]
