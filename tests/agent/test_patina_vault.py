"""Patina's own vaults and registries: files built independently (the `age` CLI and
hand-written TOML) are read, files written here decrypt with `age -d` and parse as Patina's
TOML, global and project, armored and binary; today's commands keep working beside them."""

from __future__ import annotations

import os
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from service.agent.patina_format import (
    VaultDocument,
    format_vault_text,
    infer_env_name,
    parse_vault_text,
    valid_env_name,
    valid_patina_name,
)
from service.agent.sources import SidecarSource
from tests.agent.conftest import patina_env
from tests.support.process import PATINA

TOKEN = "ghp_tw0123456789abcdefDO-NOT-LEAK-patina"
PROJECT_TOKEN = "tw-project-override-DO-NOT-LEAK"
QUOTED = 'tw "quoted" \\ back\nslash\ttab \u00e9 DO-NOT-LEAK'


def run_patina(
    home: Path, cwd: Path, *args: str, input: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [PATINA, *args],
        cwd=cwd,
        env=patina_env(home, **env),
        input=input,
        capture_output=True,
        timeout=60,
        check=False,
    )


def age_keygen(path: Path) -> str:
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    os.chmod(path, 0o600)
    return subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


def age_encrypt(plaintext: str, recipient: str, out: Path, *, armored: bool) -> None:
    args = ["age", "-r", recipient, "-o", str(out)] + (["-a"] if armored else [])
    subprocess.run(args, input=plaintext.encode(), check=True, capture_output=True)


def age_decrypt(path: Path, identity: Path) -> str:
    return subprocess.run(
        ["age", "-d", "-i", str(identity), str(path)], check=True, capture_output=True
    ).stdout.decode()


HAND_WRITTEN_VAULT = """\
[meta]
version = 1
created_at = "2024-12-24T12:00:00Z"
modified_at = 2024-12-24T14:30:00Z

[values]
github-token = "{token}"
openai-key = "{quoted}"
"""


@pytest.fixture
def keyed_home(tmp_path: Path) -> tuple[Path, Path, str]:
    home = tmp_path / "home"
    (home / "secrets").mkdir(parents=True, mode=0o700)
    identity = home / "secrets" / "identity.txt"
    return home, identity, age_keygen(identity)


def write_hand_made_vault(directory: Path, public: str, *, armored: bool, project: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    escaped = QUOTED.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    escaped = escaped.replace("\t", "\\t")
    text = HAND_WRITTEN_VAULT.format(token=TOKEN, quoted=escaped)
    age_encrypt(text, public, directory / "vault.age", armored=armored)
    (directory / ("recipients.txt" if project else "recipient.txt")).write_text(
        f"# hand-written\n{public}   # me\n"
    )
    # Patina's serde writes tables per secret; the inline form parses the same.
    (directory / "secrets.toml").write_text(
        'version = 1\n\n[secrets.github-token]\nenv = "GITHUB_TOKEN"\n\n'
        '[secrets.openai-key]\nenv = "OPENAI_API_KEY"\n'
    )


@pytest.mark.parametrize("armored", [False, True], ids=["binary", "armored"])
def test_a_global_vault_made_with_the_age_cli_is_injected_by_run(
    keyed_home: tuple[Path, Path, str], tmp_path: Path, armored: bool
) -> None:
    home, _, public = keyed_home
    write_hand_made_vault(home, public, armored=armored, project=False)
    work = tmp_path / "work"
    work.mkdir()
    check = (
        'test "$GITHUB_TOKEN" = "$WANT_TOKEN" && test "$OPENAI_API_KEY" = "$WANT_QUOTED" '
        "&& echo injected; printf '%s' \"$GITHUB_TOKEN\""
    )
    result = run_patina(
        home, work, "secrets", "run", "--", "sh", "-c", check,
        WANT_TOKEN=TOKEN, WANT_QUOTED=QUOTED,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"injected\n${secret:GITHUB_TOKEN}"
    status = run_patina(home, work, "secrets")
    assert b"github-token -> $GITHUB_TOKEN" in status.stdout
    assert b"openai-key -> $OPENAI_API_KEY" in status.stdout
    assert TOKEN.encode() not in status.stdout + status.stderr


@pytest.mark.parametrize("armored", [False, True], ids=["binary", "armored"])
def test_a_project_vault_made_with_the_age_cli_overrides_the_global_one(
    keyed_home: tuple[Path, Path, str], tmp_path: Path, armored: bool
) -> None:
    home, _, public = keyed_home
    write_hand_made_vault(home, public, armored=not armored, project=False)
    project = tmp_path / "repo"
    write_hand_made_vault(project / ".patina", public, armored=armored, project=True)
    text = HAND_WRITTEN_VAULT.format(token=PROJECT_TOKEN, quoted="x")
    age_encrypt(text, public, project / ".patina" / "vault.age", armored=armored)
    nested = project / "src" / "deep"
    nested.mkdir(parents=True)
    result = run_patina(
        home, nested, "secrets", "run", "--", "sh", "-c",
        'test "$GITHUB_TOKEN" = "$WANT" && echo project-wins', WANT=PROJECT_TOKEN,
    )  # fmt: skip
    assert result.stdout == b"project-wins\n", result.stderr.decode()


def test_files_written_here_decrypt_with_age_and_parse_as_patinas_toml(
    keyed_home: tuple[Path, Path, str], tmp_path: Path
) -> None:
    home, identity, public = keyed_home
    project = tmp_path / "repo"
    (project / ".patina").mkdir(parents=True)
    add = run_patina(
        home, project, "secrets", "add", "github-token", "--stdin", input=TOKEN.encode()
    )
    assert add.returncode == 0, add.stderr.decode()
    assert b"GITHUB_TOKEN" in add.stderr
    assert TOKEN.encode() not in add.stdout + add.stderr
    add = run_patina(
        home, project, "secrets", "add", "db-url", "--env", "DATABASE_URL", "--global", "--stdin",
        input=QUOTED.encode(),
    )  # fmt: skip
    assert add.returncode == 0, add.stderr.decode()

    for directory, recipients, name, value, env in (
        (project / ".patina", "recipients.txt", "github-token", TOKEN, "GITHUB_TOKEN"),
        (home, "recipient.txt", "db-url", QUOTED, "DATABASE_URL"),
    ):
        vault = directory / "vault.age"
        assert vault.read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
        document = tomllib.loads(age_decrypt(vault, identity))
        assert document["meta"]["version"] == 1
        assert document["meta"]["created_at"].endswith("Z")
        assert document["values"] == {name: value}
        registry = tomllib.loads((directory / "secrets.toml").read_text())
        assert registry == {"version": 1, "secrets": {name: {"env": env}}}
        assert (directory / recipients).read_text().split("\n")[-2] == public
        for path in (vault, directory / "secrets.toml", directory / recipients):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert value.encode() not in vault.read_bytes()


def test_names_follow_patinas_rules_and_env_names_are_inferred() -> None:
    for good in ("github-token", "a", "abc123", "my-app-db"):
        assert valid_patina_name(good), good
    for bad in ("", "GITHUB_TOKEN", "-token", "token-", "token--key", "1token", "token_key"):
        assert not valid_patina_name(bad), bad
    assert infer_env_name("openai-api-key") == "OPENAI_API_KEY"
    assert valid_env_name("GITHUB_TOKEN")
    assert not valid_env_name("github-token")
    assert not valid_env_name("_TOKEN")
    assert not valid_env_name("1TOKEN")


def test_bad_names_and_env_names_are_refused_without_echoing_the_value(
    keyed_home: tuple[Path, Path, str], tmp_path: Path
) -> None:
    home, _, _ = keyed_home
    for args in (["Bad-Name"], ["good-name", "--env", "lower_case"], ["x--y"]):
        result = run_patina(
            home, tmp_path, "secrets", "add", *args, "--stdin", input=b"tw-refused-value"
        )
        assert result.returncode == 2, args
        assert b"tw-refused-value" not in result.stdout + result.stderr
        assert b"invalid" in result.stderr


def test_todays_commands_keep_working_beside_a_patina_vault(
    keyed_home: tuple[Path, Path, str], tmp_path: Path
) -> None:
    home, identity, public = keyed_home
    write_hand_made_vault(home, public, armored=True, project=False)
    assert run_patina(home, tmp_path, "secrets", "init").returncode == 0
    legacy = run_patina(
        home, tmp_path, "secrets", "add", "API_TOKEN", "--stdin", input=b"tw-legacy"
    )
    assert legacy.returncode == 0, legacy.stderr.decode()
    assert run_patina(home, tmp_path, "secrets", "list").stdout == b"API_TOKEN\n"
    text = age_decrypt(home / "secrets" / "vault.age", identity)
    assert text == "API_TOKEN='tw-legacy'\n"
    # A hyphenated name is Patina's; it lands in the Patina vault, not the dotenv one.
    patina_add = run_patina(home, tmp_path, "secrets", "add", "npm-token", "--stdin", input=b"tw-n")
    assert patina_add.returncode == 0, patina_add.stderr.decode()
    assert tomllib.loads(age_decrypt(home / "vault.age", identity))["values"]["npm-token"] == "tw-n"
    # The dotenv commands read a Patina vault by content, and refuse to rewrite its format.
    listed = run_patina(home, tmp_path, "secrets", "list", "--vault", str(home / "vault.age"))
    assert listed.stdout.split() == [b"github-token", b"npm-token", b"openai-key"]
    rewrite = run_patina(
        home, tmp_path, "secrets", "add", "X_Y", "--vault", str(home / "vault.age"), "--stdin",
        input=b"tw-x",
    )  # fmt: skip
    assert rewrite.returncode == 2
    assert b"is a Patina vault" in rewrite.stderr


def test_recipients_are_managed_on_the_project_vault(
    keyed_home: tuple[Path, Path, str], tmp_path: Path
) -> None:
    home, _, public = keyed_home
    project = tmp_path / "repo"
    write_hand_made_vault(project / ".patina", public, armored=False, project=True)
    teammate = tmp_path / "teammate.txt"
    other = age_keygen(teammate)
    added = run_patina(home, project, "secrets", "add-recipient", other)
    assert added.returncode == 0, added.stderr.decode()
    assert b"2 recipients" in added.stderr
    listed = run_patina(home, project, "secrets", "list-recipients")
    assert listed.stdout.decode().split() == [public, other]
    # The teammate opens it with the age CLI alone.
    assert TOKEN in age_decrypt(project / ".patina" / "vault.age", teammate)
    again = run_patina(home, project, "secrets", "add-recipient", other)
    assert again.returncode == 1
    assert b"already" in again.stderr
    removed = run_patina(home, project, "secrets", "remove-recipient", other)
    assert removed.returncode == 0, removed.stderr.decode()
    with pytest.raises(subprocess.CalledProcessError):
        age_decrypt(project / ".patina" / "vault.age", teammate)
    last = run_patina(home, project, "secrets", "remove-recipient", public)
    assert last.returncode == 2
    assert b"last recipient" in last.stderr


def test_the_sidecar_pushes_a_patina_vault_under_its_env_names(
    keyed_home: tuple[Path, Path, str],
) -> None:
    home, identity, public = keyed_home
    write_hand_made_vault(home, public, armored=True, project=False)
    source = SidecarSource.parse(f"patina:{home}", identity=identity)
    assert source.load() == {"GITHUB_TOKEN": TOKEN, "OPENAI_API_KEY": QUOTED}
    before = source.change_stamp()
    (home / "secrets.toml").write_text('version = 1\n[secrets]\ngithub-token = { env = "GH" }\n')
    assert source.change_stamp() != before
    assert source.load() == {"GH": TOKEN}


def test_the_vault_toml_round_trips_every_character() -> None:
    document = VaultDocument(values={"k": "\x00\x1f\x7f\"\\'\u2028\U0001f600 end"})
    assert parse_vault_text(format_vault_text(document), origin="t").values == document.values
