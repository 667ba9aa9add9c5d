"""`patina secrets check` and `audit`: secrets found by shape and by exact value (with their
encodings), in staged files, tracked files and history; `.secretsignore`; exit codes for a
pre-commit hook; findings that name the secret, never show it."""

from __future__ import annotations

import base64
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from service.agent.scan.patterns import RULE_IDS, scan_line
from service.agent.scan.values import ValueFinder
from tests.agent.conftest import patina_env
from tests.support.process import PATINA, running_service, uds_client

# Shapes, assembled at run time so this file itself holds none of them whole.
GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS = "AKIA" + "Z7QX3JDW5NEKRP2M"
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
GITLAB = "glpat-" + "x1Y2z3W4v5U6t7S8r9Q0"
JWT = (
    "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"
)
PEM = "-----BEGIN " + "OPENSSH PRIVATE KEY-----"
VAULT_VALUE = "tw-known-value-9c1e44b0-DO-NOT-LEAK"
SERVICE_VALUE = "tw-service-only-71f3aa-DO-NOT-LEAK"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def scan_cmd(home: Path, repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [PATINA, "secrets", *args],
        cwd=repo,
        env=patina_env(home),
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    subprocess.run(
        [PATINA, "secrets", "init"], env=patina_env(home), check=True, capture_output=True
    )
    subprocess.run(
        [PATINA, "secrets", "add", "DEPLOY_KEY", "--stdin"],
        env=patina_env(home),
        input=VAULT_VALUE.encode(),
        check=True,
        capture_output=True,
    )
    return home


def assert_no_value(result: subprocess.CompletedProcess[bytes], *values: str) -> None:
    for value in (*values, VAULT_VALUE, SERVICE_VALUE):
        assert value.encode() not in result.stdout + result.stderr


def test_every_rule_recognises_its_shape_and_plain_text_passes() -> None:
    samples = {
        "github-token": f"token: {GH}",
        "aws-access-key-id": f"key={AWS}",
        "slack-token": SLACK,
        "stripe-key": f"Stripe.api_key = '{STRIPE}'",
        "gitlab-token": GITLAB,
        "jwt": f"Authorization: Bearer {JWT}",
        "private-key": PEM,
        "url-credentials": "postgres://app:s3cr3t-Pa55word@db.internal/app",
        "generic-secret": 'DB_PASSWORD = "hunter2hunter2hunter2"',
    }
    for rule, line in samples.items():
        assert rule in {hit.rule.id for hit in scan_line(line)}, rule
    assert samples.keys() <= RULE_IDS
    for clean in ("def token(self): return self._token", 'password = "${DB_PASSWORD}"',
                  'api_key = "<your-api-key-here>"', "ghp_tooshort"):  # fmt: skip
        assert scan_line(clean) == [], clean


def test_check_blocks_staged_secrets_naming_file_line_and_rule(home: Path, repo: Path) -> None:
    (repo / "app.py").write_text(f"# config\nGITHUB = '{GH}'\nAWS_ID = '{AWS}'\n")
    (repo / "key.txt").write_text(f"{PEM}\nbody\n")
    git(repo, "add", "app.py", "key.txt")
    result = scan_cmd(home, repo, "check")
    assert result.returncode == 1, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert "app.py:2: github-token (high)" in lines
    assert "app.py:3: aws-access-key-id (high)" in lines
    assert "key.txt:1: private-key (high)" in lines
    assert b"commit blocked" in result.stderr
    assert_no_value(result, GH, AWS)


def test_check_reads_the_index_not_the_work_tree_and_is_clean_with_nothing_staged(
    home: Path, repo: Path
) -> None:
    (repo / "app.py").write_text("print('hello')\n")
    git(repo, "add", "app.py")
    (repo / "app.py").write_text(f"GH = '{GH}'\n")  # changed after staging: not committed
    clean = scan_cmd(home, repo, "check")
    assert clean.returncode == 0, clean.stdout.decode() + clean.stderr.decode()
    assert b"no secrets found in 1 staged files" in clean.stdout
    git(repo, "add", "app.py")
    assert scan_cmd(home, repo, "check").returncode == 1


def test_a_scan_outside_a_repository_is_an_error_exit_2(home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    result = scan_cmd(home, outside, "check")
    assert result.returncode == 2
    assert b"cannot scan" in result.stderr


def test_known_values_are_found_in_their_encodings_by_name(home: Path, repo: Path) -> None:
    raw = VAULT_VALUE.encode()
    (repo / "plain.txt").write_text(f"x\ndeploy = {VAULT_VALUE}\n")
    (repo / "b64.txt").write_text("a\nb\n" + base64.b64encode(b"user:" + raw).decode() + "\n")
    (repo / "hex.txt").write_text(raw.hex() + "\n")
    (repo / "url.txt").write_text("one\ntwo\nthree\n?k=" + urllib.parse.quote(VAULT_VALUE) + "\n")
    (repo / "json.txt").write_text(
        '{"k": "' + "".join(f"\\u{ord(c):04x}" for c in VAULT_VALUE) + '"}\n'
    )
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "values")
    result = scan_cmd(home, repo, "audit")
    assert result.returncode == 1, result.stderr.decode()
    lines = set(result.stdout.decode().splitlines())
    for expected in ("plain.txt:2", "b64.txt:3", "hex.txt:1", "url.txt:4", "json.txt:1"):
        assert f"{expected}: known-value (high) DEPLOY_KEY (vault)" in lines, lines
    assert_no_value(result)
    without = scan_cmd(home, repo, "audit", "--no-values")
    assert without.returncode == 0, without.stdout.decode()


def test_values_the_running_service_holds_are_found_by_name_and_handle(
    home: Path, repo: Path
) -> None:
    (repo / "notes.md").write_text("a\n" + base64.b64encode(SERVICE_VALUE.encode()).decode() + "\n")
    git(repo, "add", ".")
    with running_service(env={"PATINA_HOME": str(home)}, home=home) as service:
        with uds_client(service.admin_socket) as admin:
            pushed = admin.put("/admin/secrets", json={"secrets": {"SVC_TOKEN": SERVICE_VALUE}})
            assert pushed.status_code == 200
        result = scan_cmd(home, repo, "check")
    assert result.returncode == 1, result.stderr.decode()
    line = result.stdout.decode().strip()
    assert line.startswith("notes.md:2: known-value (high) SVC_TOKEN (service, <secret:")
    assert_no_value(result)


def test_secretsignore_leaves_out_paths_and_rules(home: Path, repo: Path) -> None:
    (repo / "fixtures").mkdir()
    (repo / "fixtures" / "sample.txt").write_text(f"{GH}\n")
    (repo / "conf.py").write_text(f"GH = '{GH}'\npassword = 'correct-horse-battery'\n")
    (repo / ".secretsignore").write_text("# test data\nfixtures/\nrule:generic-secret\n")
    git(repo, "add", ".")
    result = scan_cmd(home, repo, "check")
    assert result.stdout.decode().splitlines() == ["conf.py:1: github-token (high)"]
    (repo / ".secretsignore").write_text("fixtures/\nrule:github-token conf.py\n")
    result = scan_cmd(home, repo, "check")
    assert result.stdout.decode().splitlines() == ["conf.py:2: generic-secret (medium)"]


def test_history_finds_a_secret_a_later_commit_removed(home: Path, repo: Path) -> None:
    (repo / "a.txt").write_text("one\ntwo\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    (repo / "a.txt").write_text(f"one\ntwo\nslack = {SLACK}\nuse {VAULT_VALUE}\n")
    git(repo, "commit", "-qam", "oops")
    (repo / "a.txt").write_text("one\ntwo\n")
    git(repo, "commit", "-qam", "fix")
    assert scan_cmd(home, repo, "audit").returncode == 0
    result = scan_cmd(home, repo, "audit", "--history")
    assert result.returncode == 1, result.stderr.decode()
    found = result.stdout.decode().splitlines()
    assert [line.split(":", 1)[1] for line in found] == [
        "a.txt:3: slack-token (high)",
        "a.txt:4: known-value (high) DEPLOY_KEY (vault)",
    ]
    assert_no_value(result, SLACK)


def test_the_value_finder_reports_each_match_on_its_own_line() -> None:
    finder = ValueFinder([("A", b"first-value-1234"), ("B", b"second-value-5678")])
    text = b"x\nfirst-value-1234 and second-value-5678\n\n" + base64.b64encode(b"first-value-1234")
    assert [(hit.line, hit.label) for hit in finder.find(text)] == [(2, "A"), (2, "B"), (4, "A")]
    assert finder.find(b"nothing here\n") == []
    assert ValueFinder([("short", b"abc")]).too_short == ["short"]
