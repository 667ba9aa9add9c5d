"""Schemathesis-generated requests sent to a real server, with every finding collected.

Schemathesis generates cases from the OpenAPI document (valid ones and, in negative mode,
ones that break the schema); each case is sent with httpx over a real socket (the public
Unix socket, the admin socket or TLS TCP) and its response checked against the document.
Unlike schemathesis' own runner this keeps going after a failure, so one run reports every
distinct problem, and it counts the cases that really reached the server.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import openapi_document

REPO_ROOT = Path(__file__).resolve().parents[2]
# Every 5xx is a bug except the designed ones: the gate is full (503), a deadline passed (504).
DESIGNED_5XX = frozenset({503, 504})
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def public_document() -> dict[str, Any]:
    """The committed openapi.json when there is one, else the document the app builds."""
    committed = REPO_ROOT / "openapi.json"
    if committed.is_file():
        document: dict[str, Any] = json.loads(committed.read_text())
        return document
    return _app_document(admin=False)


def admin_document() -> dict[str, Any]:
    """The admin socket's document (never published; built from the admin app)."""
    return _app_document(admin=True)


def _app_document(*, admin: bool) -> dict[str, Any]:
    return openapi_document(admin=admin)


@dataclass
class Finding:
    """One response that broke a rule: what was sent, what came back, which rule."""

    operation: str
    mode: str
    status: int
    problem: str
    request: str

    def __str__(self) -> str:
        return (
            f"{self.operation} [{self.mode}] -> {self.status}: {self.problem}\n    {self.request}"
        )


@dataclass
class FuzzReport:
    """Cases sent per operation and status, and the distinct findings."""

    target: str
    sent: int = 0
    unsendable: int = 0
    unresponsive: bool = False
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    findings: dict[tuple[str, int, str], Finding] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        self.findings.setdefault((finding.operation, finding.status, finding.problem), finding)

    def summary(self) -> str:
        lines = [f"{self.target}: {self.sent} cases sent ({self.unsendable} unsendable by httpx)"]
        for (operation, status), count in sorted(self.statuses.items()):
            lines.append(f"  {operation:42} {status}  x{count}")
        lines += [f"  FINDING {f}" for f in self.findings.values()]
        return "\n".join(lines)


def _describe(request: httpx.Request) -> str:
    body = request.content[:200]
    return f"{request.method} {request.url.raw_path.decode(errors='replace')} body={body!r}"


def fuzz(
    client: httpx.Client,
    document: dict[str, Any],
    *,
    target: str,
    examples: int,
    headers: dict[str, str] | None = None,
    seed: int | None = None,
    exclude: frozenset[str] = frozenset(),
) -> FuzzReport:
    """Send `examples` positive and `examples` negative cases per operation through `client`.

    `exclude` (and PATINA_FUZZ_EXCLUDE, comma-separated) names operations to leave out,
    e.g. `POST /api/index`, when chasing another finding by hand."""
    schema = schemathesis.openapi.from_dict(document)
    report = FuzzReport(target)
    base_url = str(client.base_url).rstrip("/")
    seed = seed if seed is not None else int(os.environ.get("PATINA_FUZZ_SEED", "0")) or None
    exclude = exclude | {x for x in os.environ.get("PATINA_FUZZ_EXCLUDE", "").split(",") if x}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in exclude:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, headers=headers)
            runner = _case_runner(client, base_url, mode.value, report)
            run = settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=seed is None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
                print_blob=False,
            )(given(case=strategy)(runner))
            if seed is not None:
                run = hypothesis_seed(seed)(run)
            # Negative mode on an operation with nothing to break (GET /health) is unsatisfiable.
            with contextlib.suppress(Unsatisfiable):
                run()
            if report.unresponsive:
                return report
    return report


def _case_runner(
    client: httpx.Client, base_url: str, mode: str, report: FuzzReport
) -> Callable[[schemathesis.Case], None]:
    def one_case(case: schemathesis.Case) -> None:
        _send_and_check(client, case, base_url, mode, report)

    return one_case


def _send_and_check(
    client: httpx.Client, case: schemathesis.Case, base_url: str, mode: str, report: FuzzReport
) -> None:
    if report.unresponsive:
        return
    kwargs = case.as_transport_kwargs(base_url=base_url)
    data = kwargs.get("data")
    try:
        response = client.request(
            kwargs["method"],
            kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            json=kwargs.get("json"),
            content=data if isinstance(data, bytes | str) else None,
            data=data if isinstance(data, dict) else None,
        )
    except httpx.LocalProtocolError:
        # httpx refuses to put some generated header values on the wire at all.
        report.unsendable += 1
        return
    except httpx.TransportError as exc:
        # No answer: the server hung or dropped the connection. Later cases would only
        # pile up behind it, so this target stops here.
        request = f"{kwargs['method']} {kwargs['url']} json={kwargs.get('json')!r:.200}"
        report.add(Finding(case.operation.label, mode, 0, f"no answer: {exc!r}", request))
        report.unresponsive = True
        return
    report.sent += 1
    label = case.operation.label
    report.statuses[(label, response.status_code)] += 1
    request = _describe(response.request)
    if response.status_code >= 500 and response.status_code not in DESIGNED_5XX:
        report.add(Finding(label, mode, response.status_code, "server error", request))
    if response.status_code >= 400 and not _is_json_error(response):
        report.add(Finding(label, mode, response.status_code, "error body not {error}", request))
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        for failure in group.exceptions:
            report.add(Finding(label, mode, response.status_code, failure.title, request))


def _is_json_error(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str)
