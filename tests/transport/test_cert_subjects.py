"""Mutual-TLS subjects: RFC 4514 in logs and identities, compared as names in the consumers
file, so a certificate can neither forge a log line nor pass for a different subject."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from service.client import ssl_context
from service.devcerts import DevCertFiles
from service.subjects import parse_subject, render_subject, same_subject
from tests.support.certs import issue_client_cert
from tests.support.process import free_port, running_service, uds_client

TOKEN = "pt_subject-tests-token-31c0"
SECRET = "tripwire-subject-7d2e-DO-NOT-LEAK"


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


# Two subjects the old `k=v,k=v` join printed identically as "CN=a,O=b":
# one attribute whose value holds a comma, and two attributes.
ONE_ATTRIBUTE = _name((NameOID.COMMON_NAME, "a,O=b"))
TWO_ATTRIBUTES = _name((NameOID.ORGANIZATION_NAME, "b"), (NameOID.COMMON_NAME, "a"))
FORGED_LINE = "INFO patina.access forged=1 principal=uid:0"
INJECTING = _name((NameOID.COMMON_NAME, f"agent\n{FORGED_LINE}\x1b[2K"))


def _args(certs: DevCertFiles, port: int) -> list[str]:
    return [
        *("--tcp", f"127.0.0.1:{port}", "--tls-cert", str(certs.server)),
        *("--tls-key", str(certs.server_key), "--tls-client-ca", str(certs.ca)),
    ]


def _client(port: int, certs: DevCertFiles, cert: Path, key: Path) -> httpx.Client:
    return httpx.Client(
        base_url=f"https://localhost:{port}",
        verify=ssl_context(certs.ca, cert, key),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )


def test_subjects_are_rendered_per_rfc_4514_and_parse_back_to_the_same_name() -> None:
    assert render_subject(ONE_ATTRIBUTE) == "CN=a\\,O=b"
    assert render_subject(TWO_ATTRIBUTES) == "CN=a,O=b"
    rendered = render_subject(INJECTING)
    assert rendered.isprintable()
    assert "\\0A" in rendered
    for name in (ONE_ATTRIBUTE, TWO_ATTRIBUTES, INJECTING):
        assert parse_subject(render_subject(name)) == name
        assert same_subject(render_subject(name), name)
    assert not same_subject(render_subject(ONE_ATTRIBUTE), TWO_ATTRIBUTES)


@pytest.mark.parametrize("text", ["", "not a dn", "CN"])
def test_a_subject_that_is_not_a_distinguished_name_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 4514"):
        parse_subject(text)


def test_a_certificate_subject_cannot_write_a_line_into_the_text_log(
    short_tmp: Path, dev_certs: DevCertFiles
) -> None:
    cert, key = issue_client_cert(dev_certs, INJECTING, short_tmp / "injecting")
    port = free_port()
    env = {"PATINA_SERVE_TOKEN": TOKEN}
    with running_service(_args(dev_certs, port), env=env, home=short_tmp / "home") as service:
        with _client(port, dev_certs, cert, key) as client:
            assert client.get("/metrics").status_code == 200
        log = service.wait_for_log("cert:CN=agent")
    assert not any(line.startswith(FORGED_LINE) for line in log.splitlines())
    assert "\x1b" not in log
    access = next(line for line in log.splitlines() if "cert:CN=agent" in line)
    # The subject's own escapes (\0A, \1B), with the log's quoting doubling the backslash.
    assert f"cert:CN=agent\\\\0A{FORGED_LINE}\\\\1B[2K" in access


def test_subjects_that_printed_alike_are_told_apart_by_the_consumers_file(
    short_tmp: Path, dev_certs: DevCertFiles
) -> None:
    consumers = short_tmp / "consumers.toml"
    # RFC 4514 lists the last RDN first: this names O=b, then CN=a.
    consumers.write_text('[[consumers]]\nsubject = "CN=a,O=b"\nallow = ["*"]\n')
    lookalike = issue_client_cert(dev_certs, ONE_ATTRIBUTE, short_tmp / "lookalike")
    named = issue_client_cert(dev_certs, TWO_ATTRIBUTES, short_tmp / "named")
    port = free_port()
    env = {"PATINA_SERVE_TOKEN": TOKEN, "PATINA_SECRETS__CONSUMERS_FILE": str(consumers)}
    with running_service(_args(dev_certs, port), env=env, home=short_tmp / "home") as service:
        with uds_client(service.admin_socket) as admin:
            pushed = admin.put("/admin/secrets", json={"secrets": {"DEPLOY_KEY": SECRET}})
            assert pushed.status_code == 200
        with _client(port, dev_certs, *lookalike) as client:
            denied = client.get("/secrets/DEPLOY_KEY")
        with _client(port, dev_certs, *named) as client:
            allowed = client.get("/secrets/DEPLOY_KEY")
    assert denied.status_code == 403
    assert SECRET not in denied.text
    assert allowed.status_code == 200
    assert allowed.json()["value"] == SECRET


def test_a_consumers_entry_with_a_malformed_subject_refuses_to_start(
    short_tmp: Path,
) -> None:
    from service.secrets.policy import PolicyError, parse_policy

    with pytest.raises(PolicyError, match=r"consumers\[0\]: subject: not an RFC 4514"):
        parse_policy(
            {"consumers": [{"subject": "no equals sign", "allow": ["*"]}]}, owner_uid=0, source="c"
        )
