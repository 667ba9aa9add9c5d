"""Fuzzing: schemathesis cases from the OpenAPI document against a real server, over the
public Unix socket, over TLS with a token, and the admin API over the admin socket.

Zero 5xx other than the designed 503/504, every error `{"error": ...}`, every response
conforming to the document, and the server alive and answering afterwards. `make test`
runs a few cases per operation; `make fuzz` sets PATINA_FUZZ_EXAMPLES and
PATINA_FUZZ_MIN_CASES for the long run (at least 5,000 cases in all).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest

from tests.proving.fuzzing import FuzzReport, admin_document, fuzz, public_document
from tests.proving.stack import TCP_TOKEN, Stack, make_stack
from tests.support.process import short_tmp_dir

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("PATINA_FUZZ_EXAMPLES", "6"))
# Per target: the long run asks each public transport for half of its 5,000 cases.
MIN_CASES = int(os.environ.get("PATINA_FUZZ_MIN_CASES", "0"))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    home = short_tmp_dir("fz")
    stack = make_stack(home, knowledge=True)
    try:
        stack.service.start(timeout=120)
        # Not pre-indexed: see the report on POST /api/index.
        stack.push({"GITHUB_TOKEN": "fuzz-value-1", "DEPLOY_KEY": "fuzz-value-2"})
        yield stack
    finally:
        stack.service.kill()
        shutil.rmtree(home, ignore_errors=True)


def _check(report: FuzzReport, stack: Stack, *, operations: int, min_cases: int = 0) -> None:
    sys.stderr.write(report.summary() + "\n")
    assert not report.findings, report.summary()
    # Every operation was exercised, and as many cases as asked for reached the server.
    assert len({op for op, _ in report.statuses}) == operations, report.summary()
    assert report.sent >= max(min_cases, operations * 2), report.summary()
    assert stack.service.proc is not None
    assert stack.service.proc.poll() is None
    with stack.uds() as client:
        assert client.get("/health").json()["status"] == "ok"
    log = stack.service.log()
    assert "unhandled error" not in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]


def _operations(document: dict[str, object]) -> int:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return sum(len(methods) for methods in paths.values())


def test_fuzzed_public_api_over_the_unix_socket_conforms(stack: Stack) -> None:
    document = public_document()
    with stack.uds(timeout=30) as client:
        report = fuzz(client, document, target="public api over uds", examples=EXAMPLES)
    _check(report, stack, operations=_operations(document), min_cases=MIN_CASES)


def test_fuzzed_public_api_over_tls_conforms(stack: Stack) -> None:
    document = public_document()
    with stack.tls(token=None) as client:
        report = fuzz(
            client,
            document,
            target="public api over tls",
            examples=EXAMPLES,
            headers={"Authorization": f"Bearer {TCP_TOKEN}"},
        )
    _check(report, stack, operations=_operations(document), min_cases=MIN_CASES)


def test_fuzzed_admin_api_over_the_admin_socket_conforms(stack: Stack) -> None:
    document = admin_document()
    with stack.admin(timeout=30) as client:
        report = fuzz(client, document, target="admin api over the admin socket", examples=EXAMPLES)
    _check(report, stack, operations=_operations(document))
    # The fuzzer may have replaced or cleared the set: the admin API still works after it.
    stack.push({"AFTER_FUZZ": "x"})
    with stack.uds() as client:
        assert client.get("/secrets/AFTER_FUZZ").json()["value"] == "x"


def test_fuzz_cases_without_a_token_over_tls_all_get_401(stack: Stack) -> None:
    # Every non-public route refuses an anonymous TCP caller, whatever the fuzzer sends.
    document = public_document()
    with stack.tls(token=None) as client:
        report = fuzz(client, document, target="tls without token", examples=2)
    public = {"GET /health", "GET /version"}
    statuses = {(op, status) for op, status in report.statuses if op not in public}
    # 400/422: an unparsable body is refused before authentication, revealing nothing.
    assert statuses, report.summary()
    assert all(status in (400, 401, 422) for _, status in statuses), report.summary()
    assert not any(op not in public and status == 200 for op, status in report.statuses)
