"""Attacks on the scrubber through the real CLI: each test prints a tripwire the way a
red-team pass got it past `patina secrets run` (real coreutils, xxd, od, hexdump, a child
writing to /dev/tty, a value split between stdout and stderr, ...) and proves that no
value reaches any output."""

from __future__ import annotations

import base64
import os
import pty
import select
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.agent.conftest import DUMPS, TRIPWIRE, add_secret, patina, patina_env
from tests.support.process import PATINA, running_service, short_tmp_dir

PY = sys.executable
# Longer than the 57 bytes that `base64` puts on one 76-column line: a JWT-sized token.
LONG = "tw-long-4f1c9e27b6d8a0535e7c1d2b9a8f6e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b-DO-NOT-LEAK"
PASSWORD = "Qz7#kP"  # a 6-byte Basic-auth password
PUNCTUATED = "tw+/<&>=?\"sl'ash-DO-NOT-LEAK"
SHORT_FILE_TOKEN = "tw-d1r-5e1a9"  # shorter than a line of a multi-line value is taken to be


@pytest.fixture
def leaky_home(home: Path) -> Path:
    """The agent home plus a long token, a short password and a punctuated value."""
    add_secret(home, "LONG_TOKEN", LONG)
    add_secret(home, "PASSWORD", PASSWORD)
    add_secret(home, "PUNCTUATED", PUNCTUATED)
    return home


def run_shell(home: Path, script: str, *env: str) -> subprocess.CompletedProcess[bytes]:
    """`patina secrets run --source vault --env … -- sh -c SCRIPT`."""
    args = [arg for mapping in env for arg in ("--env", mapping)]
    return patina(home, "secrets", "run", "--source", "vault", *args, "--", "sh", "-c", script)


def assert_no_value(output: bytes, *values: str) -> None:
    """Neither a value nor any 8-byte run of it shows, raw, in base64 at any alignment
    (line breaks and spaces of wrapping and dumps taken out), or in hex."""
    flat = output.replace(b"\n", b"").replace(b"\r", b"").replace(b" ", b"")
    for value in values:
        raw = value.encode()
        assert raw not in output
        for k in range(0, len(raw) - 8):
            piece = raw[k : k + 8]
            assert piece not in flat, piece
            assert piece.hex().encode() not in flat.lower(), piece
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw)[4:-4]
            assert encoded not in flat, shift
            assert encoded.translate(bytes.maketrans(b"+/", b"-_")) not in flat, shift
        for shift in range(5):
            assert base64.b32encode(b"\0" * shift + raw)[8:-8] not in flat.upper(), shift


@pytest.mark.parametrize(
    "printer",
    [
        'printf "%s\\n" "$T" | base64',
        'printf "%s\\n" "$T" | base64 -w 13',
        'printf "%s" "$T" | base64 -w 1',
        'printf "%s" "$T" | base64 | sed "s/$/\\r/"',
        'printf "x%s" "$T" | base64',
        'printf "xy%s" "$T" | base64 -w 64',
        'printf "%s" "$T" | basenc --base64url',
        'printf "ab%s" "$T" | basenc --base64url | tr -d =',
        'printf "%s" "$T" | base32',
        'printf "%s\\n" "$T" | base32 -w 10',
        'printf "abc%s" "$T" | base32 | tr A-Z a-z',
    ],
)
def test_wrapped_encodings_of_a_long_token_are_replaced(leaky_home: Path, printer: str) -> None:
    result = run_shell(leaky_home, printer, "T=LONG_TOKEN")
    assert result.returncode == 0, result.stderr
    assert b"${secret:LONG_TOKEN}" in result.stdout
    assert_no_value(result.stdout + result.stderr, LONG)


@pytest.mark.parametrize("dump", DUMPS)
def test_hex_and_character_dumps_are_replaced(leaky_home: Path, dump: list[str]) -> None:
    result = run_shell(leaky_home, f'printf "%s\\n" "$T" | {" ".join(dump)}', "T=LONG_TOKEN")
    assert result.returncode == 0, result.stderr
    assert b"${secret:LONG_TOKEN}" in result.stdout
    assert_no_value(result.stdout + result.stderr, LONG)


@pytest.mark.parametrize("user", ["u", "us", "use", "user", "admin"])
def test_short_basic_auth_passwords_are_replaced(leaky_home: Path, user: str) -> None:
    script = f'printf "Authorization: Basic %s\\n" "$(printf "{user}:%s" "$P" | base64)"'
    result = run_shell(leaky_home, script, "P=PASSWORD")
    assert result.returncode == 0, result.stderr
    header = result.stdout.decode()
    assert header.startswith("Authorization: Basic "), header
    encoded, placeholder, rest = header.removeprefix("Authorization: Basic ").partition(
        "${secret:PASSWORD}"
    )
    assert placeholder, header
    assert rest == "\n"
    # Left: the user name's characters, and at most one holding the password's first bits.
    assert len(encoded) <= -(-(len(user) + 1) * 4 // 3), header


def test_json_html_and_percent_escapes_are_replaced(leaky_home: Path) -> None:
    printer = textwrap.dedent(
        """
        import html, json, os, urllib.parse
        value = os.environ["V"]
        print(json.dumps(value).replace("/", "\\\\/"))  # PHP
        print(json.dumps(value).replace("&", "\\\\u0026").replace("<", "\\\\u003c")
              .replace(">", "\\\\u003e"))  # Go
        print(json.dumps(value, ensure_ascii=True).encode().decode("unicode_escape")
              .encode("ascii", "backslashreplace").decode())
        print("".join("\\\\u%04x" % ord(c) for c in value))  # every character escaped
        print(html.escape(value))
        print("".join("&#%d;" % ord(c) for c in value))
        print("".join("&#x%X;" % ord(c) for c in value))
        print(urllib.parse.quote(value, safe=""))
        print(urllib.parse.quote_plus(value))
        print("".join("%%%02x" % b for b in value.encode()))
        print(repr(value.encode()).replace("t", "\\\\x74"))
        """
    )
    result = patina(
        leaky_home, "secrets", "run", "--source", "vault", "--env", "V=PUNCTUATED",
        "--", PY, "-c", printer,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 11
    for line in lines:
        assert b"${secret:PUNCTUATED}" in line, line
    assert_no_value(result.stdout + result.stderr, PUNCTUATED)
    # Escaped, the value has runs of its characters that are not runs of it raw: none left.
    for word in (b"DO-NOT-LEAK", b"DO%2DNOT", b"sl&#39;ash", b"sl\\u0027ash"):
        assert word not in result.stdout


@pytest.mark.parametrize("pause", ["", "sleep 0.3;"])
def test_a_value_split_between_stdout_and_stderr_is_replaced(home: Path, pause: str) -> None:
    # The first nine characters to stdout, the rest to stderr: each stream alone holds
    # only a piece, and a transcript shows them one after the other.
    script = (
        f'printf "%s" "${{T%"${{T#?????????}}"}}"; {pause} printf "%s\\n" "${{T#?????????}}" >&2'
    )
    result = run_shell(home, script, "T=API_TOKEN")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"${secret:API_TOKEN}"
    assert result.stderr == b"${secret:API_TOKEN}\n"
    for piece in (TRIPWIRE[:9], TRIPWIRE[9:]):
        assert piece.encode() not in result.stdout + result.stderr


def run_on_a_terminal(home: Path, script: str, *, typed: bytes = b"") -> bytes:
    """`patina secrets run` with a pty as its controlling terminal and stdio; everything
    the terminal shows."""
    pid, master = pty.fork()
    if pid == 0:  # the child: patina, on the pty
        try:
            os.execve(
                PATINA,
                [PATINA, "secrets", "run", "--source", "vault", "--env", "T=API_TOKEN",
                 "--", "sh", "-c", script],
                patina_env(home),
            )  # fmt: skip
        finally:
            os._exit(127)  # never back into the test runner
    shown = []
    try:
        if typed:
            time.sleep(1.0)
            os.write(master, typed)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    piece = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last process closed it
                    break
                if not piece:
                    break
                shown.append(piece)
    finally:
        os.close(master)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, b"".join(shown)
    return b"".join(shown)


def test_output_written_to_dev_tty_never_reaches_the_terminal(home: Path) -> None:
    shown = run_on_a_terminal(
        home,
        'echo "$T" > /dev/tty || echo "no terminal"; echo "$T" >&0 || echo "stdin read-only";'
        ' echo "$T"',
    )
    assert TRIPWIRE.encode() not in shown
    assert b"no terminal" in shown
    assert b"stdin read-only" in shown
    assert b"${secret:API_TOKEN}" in shown


def test_a_terminal_on_stdin_is_still_read(home: Path) -> None:
    shown = run_on_a_terminal(home, 'read line; echo "got $line $T"', typed=b"hello\n")
    assert b"got hello ${secret:API_TOKEN}" in shown
    assert TRIPWIRE.encode() not in shown


def test_the_cannot_run_error_names_the_command_as_given(home: Path) -> None:
    result = patina(home, "secrets", "run", "--source", "vault", "--", "${secret:API_TOKEN}")
    assert result.returncode == 127
    assert b"cannot run ${secret:API_TOKEN}" in result.stderr
    assert TRIPWIRE.encode() not in result.stdout + result.stderr


def test_redact_filter_catches_wrapped_and_dumped_values(leaky_home: Path) -> None:
    value = LONG.encode()
    data = (
        subprocess.run(["base64"], input=value, capture_output=True, check=True).stdout
        + subprocess.run(["xxd"], input=value, capture_output=True, check=True).stdout
        + subprocess.run(["od", "-c"], input=value, capture_output=True, check=True).stdout
    )
    result = patina(leaky_home, "secrets", "redact", "--source", "vault", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b"${secret:LONG_TOKEN}") == 3
    assert_no_value(result.stdout, LONG)


@pytest.mark.slow
def test_a_directory_secret_ending_in_a_newline_is_replaced_trimmed(tmp_path: Path) -> None:
    # A `dir:` source keeps the file's bytes, newline and all; `$(cat FILE)`, unquoted
    # expansion and most readers drop it.
    base = short_tmp_dir()
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "DIR_TOKEN").write_text(SHORT_FILE_TOKEN + "\n")
    env = patina_env(base)
    try:
        with running_service(home=base) as service:
            sidecar = subprocess.Popen(
                [PATINA, "sidecar", "--source", f"dir:{mount}", "--poll-secs", "0.1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    with service.client() as client:
                        if client.get("/secrets/DIR_TOKEN").status_code == 200:
                            break
                    time.sleep(0.1)
                result = patina(
                    base, "secrets", "run", "--env", "T=DIR_TOKEN", "--", "sh", "-c",
                    'printf "[%s]\\n" $T; printf "%s" "$(printf "%s" "$T")" | base64',
                    env=env,
                )  # fmt: skip
            finally:
                sidecar.terminate()
                sidecar.wait(20)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.decode().splitlines()
        assert lines[0].startswith("[<secret:"), lines
        assert lines[1].startswith("<secret:"), lines
        assert_no_value(result.stdout + result.stderr, SHORT_FILE_TOKEN)
    finally:
        shutil.rmtree(base, ignore_errors=True)
