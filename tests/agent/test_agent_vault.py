"""The age vault CLI: init/add/list/rm, recipients, key export/import, and interoperability
with Debian's `age` in both directions."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from service.agent.vault import read_vault
from tests.agent.conftest import TRIPWIRE, TRIPWIRE_PEM, add_secret, patina, patina_env


def vault_of(home: Path) -> Path:
    return home / "secrets" / "vault.age"


def identity_of(home: Path) -> Path:
    return home / "secrets" / "identity.txt"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def age_keygen(path: Path) -> str:
    """A fresh identity from Debian's age-keygen; returns its public key."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_init_creates_private_vault_and_identity(home: Path) -> None:
    assert mode(vault_of(home)) == 0o600
    assert mode(identity_of(home)) == 0o600
    assert mode(home / "secrets") == 0o700
    assert TRIPWIRE.encode() not in vault_of(home).read_bytes()


def test_list_shows_names_never_values(home: Path) -> None:
    result = patina(home, "secrets", "list")
    assert result.returncode == 0
    assert result.stdout.decode().split() == ["API_TOKEN", "ODD_CHARS", "PEM_KEY"]
    assert TRIPWIRE.encode() not in result.stdout + result.stderr


def test_value_in_argv_is_refused_without_echoing_it(home: Path) -> None:
    for args in (["DB_PASS", "hunter2-argv-value"], ["DB_PASS=hunter2-argv-value"]):
        result = patina(home, "secrets", "add", *args)
        assert result.returncode == 2
        assert b"never taken from the command line" in result.stderr
        assert b"hunter2-argv-value" not in result.stdout + result.stderr
    assert "DB_PASS" not in patina(home, "secrets", "list").stdout.decode()


def test_add_without_terminal_or_stdin_flag_is_refused(home: Path) -> None:
    result = patina(home, "secrets", "add", "NEW_ONE", input=b"ignored")
    assert result.returncode == 2
    assert b"--stdin" in result.stderr


def test_add_replaces_and_rm_removes(home: Path) -> None:
    add_secret(home, "API_TOKEN", "second-value-123")
    values = read_vault(vault_of(home), identity_of(home))
    assert values["API_TOKEN"] == "second-value-123"
    assert patina(home, "secrets", "rm", "API_TOKEN").returncode == 0
    assert "API_TOKEN" not in read_vault(vault_of(home), identity_of(home))
    missing = patina(home, "secrets", "rm", "API_TOKEN")
    assert missing.returncode == 2


def test_vault_opens_with_the_age_cli(home: Path) -> None:
    plain = subprocess.run(
        ["age", "-d", "-i", str(identity_of(home)), str(vault_of(home))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"API_TOKEN='{TRIPWIRE}'" in plain
    assert "PEM_KEY=" in plain


def test_file_encrypted_by_the_age_cli_is_a_vault(tmp_path: Path) -> None:
    identity = tmp_path / "key.txt"
    public = age_keygen(identity)
    os.chmod(identity, 0o600)
    vault = tmp_path / "from-age.age"
    dotenv = b'API_TOKEN=plain-from-age\nMULTI="line1\\nline2"\n'
    for armor in ([], ["-a"]):
        subprocess.run(["age", "-r", public, *armor, "-o", str(vault)], input=dotenv, check=True)
        assert read_vault(vault, identity) == {
            "API_TOKEN": "plain-from-age",
            "MULTI": "line1\nline2",
        }


def test_identity_from_age_keygen_can_be_imported(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = tmp_path / "key.txt"
    public = age_keygen(key)
    result = patina(home, "secrets", "import-key", "--stdin", input=key.read_bytes())
    assert result.returncode == 0, result.stderr
    assert mode(identity_of(home)) == 0o600
    assert patina(home, "secrets", "init").returncode == 0
    add_secret(home, "X_TOKEN", "imported-key-value")
    keys = patina(home, "secrets", "recipients", "list").stdout.decode().split()
    assert keys == [public]
    plain = subprocess.run(
        ["age", "-d", "-i", str(key), str(vault_of(home))], capture_output=True, check=True
    ).stdout
    assert b"imported-key-value" in plain


def test_recipients_add_and_rm_reencrypt(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other_public = age_keygen(other)
    os.chmod(other, 0o600)
    assert patina(home, "secrets", "recipients", "add", other_public).returncode == 0
    assert read_vault(vault_of(home), other)["API_TOKEN"] == TRIPWIRE
    assert patina(home, "secrets", "recipients", "rm", other_public).returncode == 0
    decrypt = subprocess.run(
        ["age", "-d", "-i", str(other), str(vault_of(home))], capture_output=True
    )
    assert decrypt.returncode != 0
    assert read_vault(vault_of(home), identity_of(home))["PEM_KEY"] == TRIPWIRE_PEM


def test_removing_the_last_recipient_is_refused(home: Path) -> None:
    own = patina(home, "secrets", "recipients", "list").stdout.decode().split()
    result = patina(home, "secrets", "recipients", "rm", own[0])
    assert result.returncode == 2
    assert b"last recipient" in result.stderr


def test_export_key_writes_a_private_file_unless_stdout(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "exported.txt"
    result = patina(home, "secrets", "export-key", str(target))
    assert result.returncode == 0
    assert mode(target) == 0o600
    assert target.read_text() == identity_of(home).read_text()
    assert b"AGE-SECRET-KEY" not in result.stdout + result.stderr
    assert patina(home, "secrets", "export-key", str(target)).returncode == 2  # no overwrite
    assert patina(home, "secrets", "export-key").returncode == 2  # neither file nor --stdout
    printed = patina(home, "secrets", "export-key", "--stdout")
    assert printed.stdout.decode() == identity_of(home).read_text()


def test_identity_from_env_var_and_mount(home: Path, tmp_path: Path) -> None:
    key_text = identity_of(home).read_text()
    moved = tmp_path / "moved.txt"
    identity_of(home).rename(moved)
    assert patina(home, "secrets", "list").returncode == 2  # no identity anywhere
    key_line = next(line for line in key_text.splitlines() if line.startswith("AGE-"))
    by_env = patina(home, "secrets", "list", env=patina_env(home, PATINA_IDENTITY=key_line))
    assert by_env.stdout.decode().split() == ["API_TOKEN", "ODD_CHARS", "PEM_KEY"]
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "patina_identity").write_text(key_text)
    by_mount = patina(home, "secrets", "list", env=patina_env(home, PATINA_SECRETS_DIR=str(mount)))
    assert by_mount.stdout.decode().split() == ["API_TOKEN", "ODD_CHARS", "PEM_KEY"]


def test_group_readable_identity_file_is_refused(home: Path) -> None:
    os.chmod(identity_of(home), 0o640)
    result = patina(home, "secrets", "list")
    assert result.returncode == 2
    assert b"readable by others" in result.stderr
