"""The `[[mothers]]` settings: what is accepted, what refuses to start, and that token
values stay out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.errors import StartupError
from service.mother.client import BearerToken, MotherClient, read_token
from service.mother.config import MotherNode
from service.settings import SettingsError, load_settings
from tests.support.process import ServiceProcess

TRIPWIRE = "pt_tripwire-mother-config-3c9d"


def _node(**fields: object) -> MotherNode:
    return MotherNode.model_validate({"name": "b", **fields})


def test_toml_mothers_load_into_settings(tmp_path: Path) -> None:
    config = tmp_path / "patina.toml"
    config.write_text(
        "[[mothers]]\n"
        'name = "b"\nurl = "https://host:50051"\ntoken_file = "/run/secrets/b-token"\n'
        'ca_file = "/run/secrets/ca.pem"\nclient_cert = "/run/secrets/client.pem"\n'
        'client_key = "/run/secrets/client-key.pem"\ntimeout_ms = 1500\n\n'
        '[[mothers]]\nname = "laptop"\nurl = "unix:///home/me/.patina/run/serve.sock"\n'
    )
    settings = load_settings(config, home=tmp_path)
    b, laptop = settings.mothers
    assert (b.name, b.url, b.timeout_ms) == ("b", "https://host:50051", 1500)
    assert b.client_key == Path("/run/secrets/client-key.pem")
    assert laptop.socket_path == Path("/home/me/.patina/run/serve.sock")
    assert laptop.timeout_ms == 1500


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "http://host:50051", "token_file": "/t"}, "must start with https:// or unix://"),
        ({"url": "https://host:50051"}, "needs token_file"),
        ({"url": "unix://relative.sock"}, "absolute socket path"),
        (
            {"url": "https://h:1", "token_file": "/t", "client_key": "/k"},
            "client_key without client_cert",
        ),
        ({"name": "local", "url": "unix:///s.sock"}, "reserved"),
        ({"name": "has space", "url": "unix:///s.sock"}, "pattern"),
    ],
)
def test_invalid_mother_entries_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _node(**fields)


def test_a_bad_mother_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "patina.toml"
    config.write_text('[[mothers]]\nname = "b"\nurl = "ftp://x"\n')
    with pytest.raises(SettingsError, match="invalid setting mothers.0"):
        load_settings(config, home=tmp_path)


def test_token_is_read_once_and_hidden_from_reprs(tmp_path: Path) -> None:
    token_file = tmp_path / "b.token"
    token_file.write_text(f"{TRIPWIRE}\n")
    node = _node(url="https://127.0.0.1:9", token_file=token_file)
    token = read_token(node)
    assert token is not None
    assert token.header() == {"Authorization": f"Bearer {TRIPWIRE}"}
    assert TRIPWIRE not in repr(token) + str(token)
    client = MotherClient.open(node)
    token_file.unlink()  # read once: the open client no longer needs the file
    assert TRIPWIRE not in repr(client)
    assert TRIPWIRE not in repr(vars(client))


def test_unreadable_or_bad_token_files_refuse_with_the_path(tmp_path: Path) -> None:
    missing = _node(url="https://h:1", token_file=tmp_path / "absent.token")
    with pytest.raises(StartupError, match=r"mother b: cannot read token_file .*absent.token"):
        read_token(missing)
    two = tmp_path / "two.token"
    two.write_text(f"{TRIPWIRE} second\n")
    with pytest.raises(StartupError, match="must hold one token") as refused:
        read_token(_node(url="https://h:1", token_file=two))
    assert TRIPWIRE not in str(refused.value)


def test_missing_ca_file_refuses(tmp_path: Path) -> None:
    token_file = tmp_path / "b.token"
    token_file.write_text("t\n")
    node = _node(url="https://h:1", token_file=token_file, ca_file=tmp_path / "no-ca.pem")
    with pytest.raises(StartupError, match="ca_file .*no-ca.pem is not a file"):
        MotherClient.open(node)


def test_bearer_token_repr_is_constant() -> None:
    assert repr(BearerToken(TRIPWIRE)) == "BearerToken(<hidden>)"


def test_service_with_a_missing_token_file_refuses_to_start(short_tmp: Path) -> None:
    config = short_tmp / "patina.toml"
    config.write_text(
        f'[[mothers]]\nname = "b"\nurl = "https://127.0.0.1:9"\n'
        f'token_file = "{short_tmp / "gone.token"}"\n'
    )
    service = ServiceProcess(home=short_tmp / "home", args=["--config", str(config)])
    service.start(wait=False)
    assert service.proc is not None
    assert service.proc.wait(60) == 1
    assert service.wait_for_log("refusing to start: mother b: cannot read token_file")


def test_service_with_duplicate_mother_names_refuses_to_start(short_tmp: Path) -> None:
    config = short_tmp / "patina.toml"
    entry = '[[mothers]]\nname = "b"\nurl = "unix:///tmp/nowhere.sock"\n'
    config.write_text(entry + "\n" + entry)
    service = ServiceProcess(home=short_tmp / "home", args=["--config", str(config)])
    service.start(wait=False)
    assert service.proc is not None
    assert service.proc.wait(60) == 1
    assert service.wait_for_log("mother names must be unique: b")
