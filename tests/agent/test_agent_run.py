"""`patina secrets run` and `patina secrets redact` with real child processes: values reach
the child, never its output, never an argv, never a file."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.secrets.handles import HANDLE_RE
from tests.agent.conftest import TRIPWIRE, TRIPWIRE_PEM, patina, patina_env
from tests.support.process import PATINA, running_service, short_tmp_dir, uds_client

PY = sys.executable

# Prints its environment, the base64 of the token, and the token in two separate writes.
LEAKY_CHILD = textwrap.dedent(
    """
    import base64, os, sys, time
    token = os.environ["TOK"]
    for key, value in sorted(os.environ.items()):
        print(f"{key}={value}")
    print("b64:", base64.b64encode(token.encode()).decode())
    print("hex:", token.encode().hex())
    sys.stdout.flush()
    half = len(token) // 2
    os.write(1, b"split:" + token[:half].encode())
    time.sleep(0.3)
    os.write(1, token[half:].encode() + b"\\n")
    os.write(2, b"err:" + token.encode() + b"\\n")
    print(os.environ["PEM"])
    """
)


def run(home: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return patina(home, "secrets", "run", "--source", "vault", *args, **kwargs)  # type: ignore[arg-type]


def test_child_output_shows_references_not_values(home: Path) -> None:
    result = run(
        home, "--env", "TOK=API_TOKEN", "--env", "PEM=PEM_KEY", "--", PY, "-c", LEAKY_CHILD
    )
    assert result.returncode == 0, result.stderr
    out, err = result.stdout, result.stderr
    for leak in (
        TRIPWIRE.encode(),
        base64.b64encode(TRIPWIRE.encode()),
        TRIPWIRE.encode().hex().encode(),
    ):
        assert leak not in out + err
    assert b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in out
    assert b"TOK=${secret:API_TOKEN}" in out
    assert b"b64: ${secret:API_TOKEN}" in out
    assert b"split:${secret:API_TOKEN}\n" in out
    assert b"err:${secret:API_TOKEN}" in err


def test_child_receives_the_real_value(home: Path) -> None:
    check = f"import os, sys; sys.exit(0 if os.environ['TOK'] == {TRIPWIRE!r} else 3)"
    assert run(home, "--env", "TOK=API_TOKEN", "--", PY, "-c", check).returncode == 0
    in_argv = run(
        home,
        "--",
        PY,
        "-c",
        f"import sys; sys.exit(0 if sys.argv[1] == {TRIPWIRE!r} else 3)",
        "${secret:API_TOKEN}",
    )
    assert in_argv.returncode == 0
    assert b"visible in /proc" in in_argv.stderr


def test_exit_codes_pass_through(home: Path) -> None:
    assert run(home, "--", "sh", "-c", "exit 7").returncode == 7
    killed = run(home, "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == 128 + signal.SIGTERM
    missing = run(home, "--", "/nonexistent/cmd")
    assert missing.returncode == 127


@contextlib.contextmanager
def spawn_run(home: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`patina secrets run --source vault ARGS` in the background, killed on exit."""
    with subprocess.Popen(
        [PATINA, "secrets", "run", "--source", "vault", *args],
        env=patina_env(home),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    ) as proc:
        try:
            yield proc
        finally:
            proc.kill()
            proc.wait()


def test_sigint_reaches_the_child_and_argv_in_proc_holds_no_value(home: Path) -> None:
    child = textwrap.dedent(
        """
        import os, signal, sys, time
        signal.signal(signal.SIGINT, lambda *_: sys.exit(42))
        print(os.getpid(), flush=True)
        time.sleep(60)
        """
    )
    with spawn_run(home, "--env", "TOK=API_TOKEN", "--", PY, "-c", child) as proc:
        assert proc.stdout is not None
        child_pid = int(proc.stdout.readline())
        for pid in (proc.pid, child_pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert TRIPWIRE.encode() not in cmdline
        # The value is where it was asked for: the child's environment, not patina's.
        assert TRIPWIRE.encode() in Path(f"/proc/{child_pid}/environ").read_bytes()
        assert TRIPWIRE.encode() not in Path(f"/proc/{proc.pid}/environ").read_bytes()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 42


def test_child_killed_by_a_signal_exits_128_plus_n(home: Path) -> None:
    child = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    with spawn_run(home, "--", PY, "-c", child) as proc:
        assert proc.stdout is not None
        int(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)  # forwarded; Python dies of it by default
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM


def test_vault_key_is_not_passed_to_the_child(home: Path) -> None:
    key_line = next(
        line
        for line in (home / "secrets" / "identity.txt").read_text().splitlines()
        if line.startswith("AGE-")
    )
    (home / "secrets" / "identity.txt").unlink()
    env = patina_env(home, PATINA_IDENTITY=key_line)
    result = patina(
        home, "secrets", "run", "--source", "vault", "--env", "TOK=API_TOKEN", "--", "env", env=env
    )
    assert result.returncode == 0, result.stderr
    assert b"PATINA_IDENTITY" not in result.stdout
    assert b"TOK=${secret:API_TOKEN}" in result.stdout


def test_run_writes_nothing_to_disk(home: Path, tmp_path: Path) -> None:
    user_home, tmp = tmp_path / "user", tmp_path / "tmp"
    user_home.mkdir()
    tmp.mkdir()
    env = patina_env(home, TMPDIR=str(tmp), HOME=str(user_home))
    # Whatever the CLI's imports leave behind (onnxruntime's session marker) is the baseline.
    assert patina(home, "secrets", "--help", env=env).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    result = patina(
        home,
        "secrets",
        "run",
        "--source",
        "vault",
        "--env",
        "TOK=API_TOKEN",
        "--",
        "sh",
        "-c",
        'echo "$TOK"',
        env=env,
    )
    assert result.stdout == b"${secret:API_TOKEN}\n"
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert set(after) == set(before)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TRIPWIRE.encode() not in path.read_bytes(), path


def test_redact_filter(home: Path) -> None:
    data = f"a {TRIPWIRE} b {base64.b64encode(TRIPWIRE.encode()).decode()} c\n".encode()
    result = patina(home, "secrets", "redact", "--source", "vault", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"a ${secret:API_TOKEN} b ${secret:API_TOKEN} c\n"
    only = patina(home, "secrets", "redact", "--source", "vault", "--name", "PEM_KEY", input=data)
    assert only.stdout == data


FAKE_SSH = textwrap.dedent(
    """\
    #!{python}
    # A stand-in for ssh: records argv and stdin, then runs the remote command locally.
    import os, subprocess, sys
    record = os.environ["FAKE_SSH_RECORD"]
    args = sys.argv[1:]
    while args and args[0].startswith("-"):
        args.pop(0)
    host, remote = args[0], " ".join(args[1:])
    data = sys.stdin.buffer.read()
    with open(record + ".argv", "wb") as fh:
        fh.write(b"\\0".join(a.encode() for a in sys.argv))
    with open(record + ".stdin", "wb") as fh:
        fh.write(data)
    env = {{"PATH": os.environ["PATH"]}}
    sys.exit(subprocess.run(["sh", "-c", remote], input=data, env=env).returncode)
    """
)


def test_ssh_sends_values_over_stdin_never_argv(home: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ssh"
    fake.write_text(FAKE_SSH.format(python=PY))
    fake.chmod(0o755)
    record = tmp_path / "ssh"
    env = patina_env(home, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_SSH_RECORD=str(record))
    result = patina(
        home,
        "secrets",
        "run",
        "--source",
        "vault",
        "--ssh",
        "box.example",
        "--env",
        "TOK=API_TOKEN",
        "--env",
        "PEM=PEM_KEY",
        "--",
        "sh",
        "-c",
        'echo "tok=$TOK"; printf "%s" "$PEM" | base64 -w0; echo; echo "arg=$1"; exit 5',
        "x",
        "${secret:ODD_CHARS}",
        env=env,
    )
    assert result.returncode == 5, result.stderr
    argv = (record.with_suffix(".argv")).read_bytes()
    stdin = (record.with_suffix(".stdin")).read_bytes()
    assert b"box.example" in argv
    for value in (TRIPWIRE, TRIPWIRE_PEM, "tw+/slash=?&:x"):
        assert value.encode() not in argv
    assert TRIPWIRE.encode() in stdin  # the values travelled over stdin
    assert result.stdout.splitlines() == [
        b"tok=${secret:API_TOKEN}",
        b"${secret:PEM_KEY}",
        b"arg=${secret:ODD_CHARS}",
    ]


@pytest.mark.slow
def test_run_against_a_real_service_shows_handles(tmp_path: Path) -> None:
    base = short_tmp_dir()
    with running_service(home=base) as service:
        with uds_client(service.admin_socket) as admin:
            pushed = admin.put("/admin/secrets", json={"secrets": {"API_TOKEN": TRIPWIRE}})
            assert pushed.status_code == 200, pushed.text
        env = patina_env(base)
        minted = patina(base, "secrets", "handle", "API_TOKEN", "--uses", "5", env=env)
        handle = minted.stdout.decode().strip()
        assert HANDLE_RE.fullmatch(handle), minted.stderr
        result = patina(
            base,
            "secrets",
            "run",
            "--env",
            f"TOK={handle}",
            "--env",
            "NAMED=API_TOKEN",
            "--",
            "sh",
            "-c",
            'echo "$TOK"; printf %s "$NAMED" | base64',
            env=env,
        )
        assert result.returncode == 0, result.stderr
        first, second = result.stdout.decode().splitlines()
        assert first == handle
        assert HANDLE_RE.fullmatch(second)  # a handle minted (or reused) for the name
        assert TRIPWIRE not in result.stdout.decode() + service.log()
        # The handle is bound to its owner's uid: the service resolves it only for them.
        with service.client() as client:
            resolved = client.post("/secrets/handles/resolve", json={"handles": [handle]})
        assert resolved.json()["secrets"][0]["value"] == TRIPWIRE


def _secrets_requests(metrics: str) -> dict[str, float]:
    """Requests answered per /secrets route template (from http_requests_total)."""
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("http_requests_total{") and 'route="/secrets' in line:
            route = line.split('route="', 1)[1].split('"', 1)[0]
            counts[route] = counts.get(route, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


@pytest.mark.slow
def test_run_resolves_every_reference_in_one_request(tmp_path: Path) -> None:
    base = short_tmp_dir()
    with running_service(home=base) as service:
        values = {"API_TOKEN": TRIPWIRE, "DB_PASS": "db-pass-0042-tripwire", "CI_KEY": "ci-key-77"}
        with uds_client(service.admin_socket) as admin:
            assert admin.put("/admin/secrets", json={"secrets": values}).status_code == 200
        env = patina_env(base)
        handle = patina(base, "secrets", "handle", "CI_KEY", env=env).stdout.decode().strip()
        with service.client() as client:
            before = _secrets_requests(client.get("/metrics").text)
        result = patina(
            base,
            "secrets",
            "run",
            "-e",
            "A=API_TOKEN",
            "-e",
            "B=DB_PASS",
            "-e",
            f"C={handle}",
            "--",
            "sh",
            "-c",
            'test "$A$B$C" = "$EXPECTED" && echo same',
            env={**env, "EXPECTED": "".join(values[n] for n in ("API_TOKEN", "DB_PASS", "CI_KEY"))},
        )
        with service.client() as client:
            after = _secrets_requests(client.get("/metrics").text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "same"
    spent = {route: after[route] - before.get(route, 0.0) for route in after}
    assert {route: n for route, n in spent.items() if n} == {"/secrets/resolve": 1.0}
