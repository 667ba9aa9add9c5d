"""Leak sweep: a tripwire secret goes through every path a secret can take — pushed, read
over the socket and TLS, cached, turned into a handle and resolved, injected by
`patina secrets run`, and provoked into every error we can think of — with debug logging
on. Then it is searched for, plain and encoded, in the logs, the audit log, the metrics,
every file under the service's home, and the server's environment and argv."""

from __future__ import annotations

import base64
import json
import shutil
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proving.stack import TCP_TOKEN, Stack, make_stack
from tests.support.process import run_patina, short_tmp_dir

pytestmark = pytest.mark.slow

TRIPWIRE = "tripwire-sweep-4e8a91c2-DO-NOT-LEAK"
TRIPWIRE_CACHED = "tripwire-cached-0b7d33-DO-NOT-LEAK"


def encodings(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
        urllib.parse.quote(value, safe=""),
    ]


@pytest.fixture
def stack() -> Iterator[Stack]:
    home = short_tmp_dir("lk")
    stack = make_stack(home, env={"PATINA_LOG_LEVEL": "debug"})
    stack.service.start()
    yield stack
    stack.service.kill()
    shutil.rmtree(home, ignore_errors=True)


def _exercise_the_api(stack: Stack) -> list[str]:
    """Every route a value passes through, and errors around it; answers the error bodies."""
    stack.push({"API_KEY": TRIPWIRE, "OTHER": "x" * 16})
    errors: list[str] = []
    with stack.uds() as uds, stack.tls() as tls, stack.admin() as admin:
        assert uds.get("/secrets/API_KEY").json()["value"] == TRIPWIRE
        assert tls.get("/secrets/API_KEY").json()["value"] == TRIPWIRE
        cached = uds.post("/secrets/cache", json={"secrets": {"SESSION": TRIPWIRE_CACHED}})
        assert cached.status_code == 200
        assert uds.get("/secrets/cache").json() == {"SESSION": TRIPWIRE_CACHED}
        handle = uds.post("/secrets/handles", json={"name": "API_KEY"}).json()["handle"]
        resolved = uds.post("/secrets/handles/resolve", json={"handles": [handle]})
        assert resolved.json()["secrets"][0]["value"] == TRIPWIRE
        # Errors, each carrying the tripwire somewhere in the request.
        dup = f'{{"secrets": {{"A": "{TRIPWIRE}", "A": "{TRIPWIRE}"}}}}'
        provoked = [
            admin.put("/admin/secrets", content=dup),
            admin.put("/admin/secrets", content=dup[:-3]),
            admin.put("/admin/secrets", json={"secrets": {TRIPWIRE + "!": TRIPWIRE}}),
            admin.put("/admin/secrets", json={"secrets": {"BIG": TRIPWIRE * 40_000}}),
            uds.get(f"/secrets/{TRIPWIRE}"),
            uds.post("/secrets/handles", json={"name": TRIPWIRE}),
            uds.post("/secrets/handles/resolve", json={"handles": [f"<secret:{TRIPWIRE}>"]}),
            uds.delete(f"/secrets/handles/{TRIPWIRE}"),
            # Values in value positions of an invalid body (a 422 names the field, e.g.
            # body.secrets.S, never the input).
            uds.post("/secrets/cache", json={"secrets": {"S": TRIPWIRE}, "ttl_secs": TRIPWIRE}),
            uds.post("/secrets/cache", json={"secrets": {"S": [TRIPWIRE]}}),
            uds.post("/secrets/cache", content=TRIPWIRE, headers={"content-type": "text/plain"}),
            uds.post("/api/scry", json={"query": TRIPWIRE, "limit": TRIPWIRE}),
            uds.get(f"/nowhere/{TRIPWIRE}?q={TRIPWIRE}"),
            tls.get("/secrets/API_KEY", headers={"Authorization": f"Bearer {TRIPWIRE}"}),
            tls.get(f"/secrets/{TRIPWIRE}"),
        ]
        for response in provoked:
            assert response.status_code >= 400, (response.request.url, response.text)
            errors.append(response.text)
            errors.extend(f"{k}: {v}" for k, v in response.headers.items())
        # The set is unchanged by the refused pushes.
        assert uds.get("/secrets/API_KEY").json()["value"] == TRIPWIRE
    return errors


def _run_child(stack: Stack, home: Path) -> tuple[str, list[str]]:
    """`patina secrets run` injecting the tripwire; the child prints it in several forms
    and records its own argv from /proc while it runs."""
    seen = home / "child-cmdline"
    script = (
        'printf "%s\\n" "$TOKEN"; printf "%s" "$TOKEN" | base64; '
        'printf "%s" "$TOKEN" | od -An -tx1 | tr -d " \\n"; echo; env; '
        f'cat /proc/$$/cmdline > {seen}; printf "%s" "$TOKEN" > {home}/child-wrote-this'
    )
    run = run_patina(
        "secrets",
        "run",
        "--socket",
        str(stack.service.socket),
        "--env",
        "TOKEN=API_KEY",
        "--",
        "sh",
        "-c",
        script,
        env={"PATINA_HOME": str(home)},
    )
    assert run.returncode == 0, run.stderr.decode()
    output = run.stdout.decode() + run.stderr.decode()
    assert "<secret:" in output  # the value was there, and was replaced
    child_file = home / "child-wrote-this"
    # The child itself may write the value where it likes; that file is its, not ours.
    assert child_file.read_text() == TRIPWIRE
    child_file.unlink()
    return output, [seen.read_text(errors="replace")]


def test_tripwire_is_nowhere_after_every_path_and_error(stack: Stack) -> None:
    home = stack.service.home
    haystacks: dict[str, str] = {}
    errors = _exercise_the_api(stack)
    haystacks["error responses"] = "\n".join(errors)
    output, cmdlines = _run_child(stack, home)
    haystacks["secrets run output"] = output
    haystacks["child argv"] = "\n".join(cmdlines)
    with stack.uds() as uds:
        haystacks["metrics"] = uds.get("/metrics").text
    pid = stack.pid
    haystacks["server argv"] = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    haystacks["server environ"] = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    time.sleep(0.5)  # the access log line is written just after the response
    assert stack.service.stop() == 0
    log = stack.service.log()
    assert " DEBUG " in log or '"level": "debug"' in log.lower(), "debug logging was not on"
    audit = home / "data" / "audit.jsonl"
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {"push", "read"} <= {e["event"] for e in events}
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.is_symlink():
            haystacks[str(path.relative_to(home))] = path.read_bytes().decode(errors="replace")
    sys.stderr.write(f"searched {len(haystacks)} places: {sorted(haystacks)}\n")
    for value in (TRIPWIRE, TRIPWIRE_CACHED):
        for form in encodings(value):
            leaks = [where for where, text in haystacks.items() if form in text]
            assert not leaks, f"{form!r} found in {leaks}"
    # The token used over TLS lands nowhere either, except the environment it was given in
    # (PATINA_SERVE_TOKEN is a documented source).
    token_seen = [where for where, text in haystacks.items() if TCP_TOKEN in text]
    assert token_seen == ["server environ"], token_seen
