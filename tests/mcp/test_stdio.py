"""`patina mcp` over stdio, spawned by the SDK's client as an agent spawns it, answering from
a real `patina serve` over its Unix socket or TLS: each tool, the error paths, secrets_run
behind its setting, and a clean exit when stdin closes or on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import (
    SECRETS,
    TRIPWIRE,
    TRIPWIRE_B64,
    LiveService,
    stdio_params,
    stdio_session,
)
from tests.mcp.helpers import (
    EXPECTED_TOOLS,
    HANDLE_PATTERN,
    failed,
    initialize_over_pipes,
    ok,
    structured,
)
from tests.support.process import PATINA, short_tmp_dir

pytestmark = pytest.mark.anyio


async def test_stdio_serves_each_tool_from_the_service_on_its_socket(live: LiveService) -> None:
    async with stdio_session(stdio_params(live)) as session:
        tools = [tool.name for tool in (await session.list_tools()).tools]
        found = await session.call_tool("scry", {"query": "RetryBudget", "kind": "code"})
        top = structured(found)["results"][0]
        detail = await session.call_tool("scry_detail", {"id": top["id"], "neighbours": 1})
        status = await session.call_tool("index_status", {})
        names = await session.call_tool("secrets_list", {})
        minted = await session.call_tool("secret_handle", {"name": "DEPLOY_KEY", "ttl_secs": 60})
        with pytest.raises(MCPError, match="unknown tool"):
            await session.call_tool("secrets_dump", {})
        bad = await session.call_tool("scry", {"query": "x", "limit": 500})
    assert tools == EXPECTED_TOOLS  # secrets_run only when the setting is on
    assert "src/retry.py" in ok(found)
    assert top["location"].startswith("src/retry.py:")
    assert "class RetryBudget:" in ok(detail)
    assert structured(status)["chunks"] > 0
    assert structured(names)["names"] == sorted(SECRETS)
    assert re.fullmatch(HANDLE_PATTERN, structured(minted)["handle"])
    assert "limit: Input should be less than or equal to 50" in failed(bad)


async def test_stdio_over_tls_with_a_token_file_keeps_the_tokens_scopes(
    live: LiveService,
) -> None:
    tls = ["--url", live.url, "--ca", str(live.certs.ca)]
    scry_only = stdio_params(live, *tls, "--token-file", str(live.scry_token_file))
    async with stdio_session(scry_only) as session:
        found = await session.call_tool("scry", {"query": "espresso machine"})
        names = await session.call_tool("secrets_list", {})
    assert "notes/office.txt" in ok(found)
    assert failed(names) == "caller lacks the 'secrets' scope (HTTP 403)"
    full = stdio_params(live, *tls, "--token-file", str(live.full_token_file))
    async with stdio_session(full) as session:
        status = await session.call_tool("index_status", {})
    assert structured(status)["chunks"] > 0


async def test_a_service_that_is_down_is_a_tool_error_and_the_server_keeps_serving(
    live: LiveService, tmp_path: Path
) -> None:
    nowhere = short_tmp_dir("down")
    params = stdio_params(live, "--socket", str(nowhere / "serve.sock"))
    async with stdio_session(params) as session:
        first = await session.call_tool("scry", {"query": "retry"})
        second = await session.call_tool("secrets_list", {})
    assert "the service is not reachable at unix://" in failed(first)
    assert "is `patina serve` running?" in failed(first)
    assert "not reachable" in failed(second)


async def test_a_socket_served_by_another_uid_is_refused_before_anything_is_sent(
    live: LiveService,
) -> None:
    params = stdio_params(live, PATINA_SERVICE_UID="54321")
    async with stdio_session(params) as session:
        refused = await session.call_tool("secrets_list", {})
    assert "refusing to talk to" in failed(refused)
    assert "nothing was sent" in failed(refused)


async def test_secrets_run_is_off_unless_the_setting_enables_it(live: LiveService) -> None:
    async with stdio_session(stdio_params(live)) as session:
        with pytest.raises(MCPError, match="secrets_run is off") as raised:
            await session.call_tool("secrets_run", {"command": ["true"]})
    assert "mcp.secrets_run setting" in str(raised.value)


async def test_secrets_run_injects_and_scrubs_caps_and_stops_at_its_timeout(
    live: LiveService,
) -> None:
    params = stdio_params(live, PATINA_MCP__SECRETS_RUN="true")
    script = 'printf "%s\\n" "$TOKEN"; printf "%s" "$TOKEN" | base64; echo oops >&2; exit 3'
    async with stdio_session(params) as session:
        tools = [tool.name for tool in (await session.list_tools()).tools]
        ran = await session.call_tool(
            "secrets_run", {"command": ["sh", "-c", script], "env": ["TOKEN=DEPLOY_KEY"]}
        )
        by_reference = await session.call_tool(
            "secrets_run", {"command": ["echo", "key=${secret:DEPLOY_KEY}"]}
        )
        capped = await session.call_tool(
            "secrets_run",
            {"command": ["head", "-c", "100000", "/dev/zero"], "output_cap_bytes": 1000},
        )
        stopped = await session.call_tool(
            "secrets_run", {"command": ["sleep", "30"], "timeout_secs": 0.5}
        )
        missing = await session.call_tool(
            "secrets_run", {"command": ["true"], "env": ["TOKEN=NOT_THERE"]}
        )
        cannot = await session.call_tool("secrets_run", {"command": ["/nonexistent/tool"]})
        short = await session.call_tool(
            "secrets_run", {"command": ["true"], "env": ["PIN=PIN", "TOKEN=DEPLOY_KEY"]}
        )
        value_in_env = await session.call_tool(
            "secrets_run", {"command": ["true"], "env": [f"TOKEN={TRIPWIRE}"]}
        )
    assert tools == [*EXPECTED_TOOLS, "secrets_run"]
    out = structured(ran)
    assert out["exit_code"] == 3
    assert out["timed_out"] is False
    placeholder = out["secrets_shown_as"][0]
    assert re.fullmatch(HANDLE_PATTERN, placeholder)
    assert out["stdout"].splitlines() == [placeholder, placeholder]  # plain and base64
    assert out["stderr"] == "oops\n"
    assert "Exit code 3." in ok(ran)
    assert structured(by_reference)["stdout"].startswith("key=<secret:")
    assert structured(capped)["stdout_dropped_bytes"] == 99000
    assert len(structured(capped)["stdout"].encode()) == 1000
    assert structured(stopped)["timed_out"] is True
    assert structured(stopped)["exit_code"] is None
    assert "stopped at its timeout" in ok(stopped)
    assert "NOT_THERE" in failed(missing)
    assert "cannot run the command" in failed(cannot)
    # A value too short to scrub is named (by its handle) in a warning, as `secrets run` does.
    short_out = structured(short)
    assert len(short_out["secrets_not_scrubbed"]) == 1
    assert short_out["secrets_not_scrubbed"][0] in short_out["secrets_shown_as"]
    assert "is too short to be scrubbed from output" in ok(short)
    assert "expected a secret name" in failed(value_in_env)
    for answer in (ran, by_reference, missing, cannot, value_in_env):
        dumped = answer.model_dump_json()
        assert TRIPWIRE not in dumped
        assert TRIPWIRE_B64 not in dumped


async def test_no_stdio_answer_or_error_carries_a_held_value(live: LiveService) -> None:
    answers = []
    async with stdio_session(stdio_params(live)) as session:
        for mode in ("hybrid", "lexical", "semantic"):
            found = await session.call_tool("scry", {"query": "deploy key pasted", "mode": mode})
            answers.append(found)
            for hit in structured(found)["results"]:
                detail = await session.call_tool("scry_detail", {"id": hit["id"], "neighbours": 2})
                answers.append(detail)
        answers.append(await session.call_tool("scry", {"query": TRIPWIRE}))
        answers.append(await session.call_tool("secret_handle", {"name": TRIPWIRE}))
        answers.append(await session.call_tool("secret_handle", {"name": "NOT_THERE"}))
    dumped = [answer.model_dump_json() for answer in answers]
    assert any("${secret:DEPLOY_KEY}" in text for text in dumped)
    for text in dumped:
        assert TRIPWIRE not in text
        assert TRIPWIRE_B64 not in text
    assert TRIPWIRE not in live.texts_written()


def _spawn(live: LiveService, **extra: str) -> subprocess.Popen[bytes]:
    env = {"PATINA_HOME": str(live.home), "PATH": "/usr/bin:/bin", **extra}
    return subprocess.Popen(
        [PATINA, "mcp"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_the_stdio_server_exits_cleanly_when_stdin_closes(live: LiveService) -> None:
    with _spawn(live) as proc:
        initialize_over_pipes(proc)
        # communicate() closes stdin first, then waits for the exit.
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert b"Traceback" not in err


def test_the_stdio_server_exits_cleanly_on_sigterm(live: LiveService) -> None:
    with _spawn(live) as proc:
        initialize_over_pipes(proc)
        proc.send_signal(signal.SIGTERM)
        # Its stdin is still open: the signal alone ends it.
        assert proc.wait(timeout=20) == 0
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert b"Traceback" not in err


def test_sigterm_also_stops_a_command_secrets_run_is_running(
    live: LiveService, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {
            "name": "secrets_run",
            "arguments": {"command": ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 120"]},
        },
    }
    with _spawn(live, PATINA_MCP__SECRETS_RUN="true") as proc:
        initialize_over_pipes(proc)
        assert proc.stdin is not None
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        for message in (initialized, call):
            proc.stdin.write((json.dumps(message) + "\n").encode())
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        proc.communicate(timeout=20)
    # The command's process is gone (killed, and reaped by init once we exited).
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the command outlived the server"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.split(") ", 1)[1][0] != "Z"  # a zombie has ended
