"""The /metrics exposition passes Prometheus' own linter and keeps labels low-cardinality."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.process import running_service


def test_promtool_accepts_the_metrics(short_tmp: Path) -> None:
    with running_service(home=short_tmp) as service, service.client() as c:
        c.get("/health")
        c.get("/nope")
        text = c.get("/metrics").text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_requests_in_flight",
        "patina_build_info",
    ):
        assert name in text
    assert 'route="/health"' in text
