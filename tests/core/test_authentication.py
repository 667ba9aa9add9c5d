"""Authentication as a unit: a connection and a bearer token become a Principal, or 401/403.
(Over real sockets: tests/transport; through the app: tests/core/test_api_contract.py.)"""

from __future__ import annotations

import pytest
from starlette.requests import Request

from service.auth import bearer_token, principal_for, token_for
from service.errors import Forbidden, Unauthorized
from service.principal import ADMIN_SCOPES, LOCAL_SCOPES
from service.tokens import TokenRecord, TokenStore, digest
from service.transport.connection import ConnectionInfo, PeerCred

TOKEN = "pt_auth-unit-token-5c2e"
OTHER_TOKEN = "pt_auth-unit-other-91aa"
TOKENS = TokenStore(
    [
        TokenRecord("ci", digest(TOKEN), frozenset({"scry"})),
        TokenRecord("ops", digest(OTHER_TOKEN), frozenset({"secrets", "index"})),
    ]
)


def request(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "headers": headers})


def test_a_socket_peer_is_its_uid_with_the_local_scopes_and_needs_no_token() -> None:
    conn = ConnectionInfo("uds", PeerCred(pid=41, uid=1234, gid=99))
    principal = principal_for(conn, None, TOKENS)
    assert (principal.name, principal.uid, principal.gid, principal.pid) == (
        "uid:1234",
        1234,
        99,
        41,
    )
    assert principal.scopes == LOCAL_SCOPES
    # A token sent over the socket changes nothing: the uid is the credential.
    assert principal_for(conn, TOKEN, TOKENS) == principal


def test_an_admin_socket_peer_holds_only_the_admin_scope() -> None:
    conn = ConnectionInfo("admin", PeerCred(pid=0, uid=1234, gid=99))
    principal = principal_for(conn, None, TOKENS)
    assert principal.scopes == ADMIN_SCOPES
    assert principal.pid is None  # 0 across a container boundary: unknown, not pid 0


def test_a_tcp_caller_is_its_token_with_the_token_scopes() -> None:
    principal = principal_for(ConnectionInfo("tcp"), OTHER_TOKEN, TOKENS)
    assert (principal.name, principal.token_name) == ("token:ops", "ops")
    assert principal.scopes == frozenset({"secrets", "index"})
    assert principal.uid is None


def test_a_client_certificate_joins_the_tcp_identity() -> None:
    conn = ConnectionInfo("tcp", cert_subject="CN=agent-1,O=team")
    principal = principal_for(conn, TOKEN, TOKENS)
    assert principal.name == "token:ci/cert:CN=agent-1,O=team"
    assert principal.cert_subject == "CN=agent-1,O=team"


@pytest.mark.parametrize("token", [None, "pt_wrong", TOKEN + "x", ""])
def test_a_tcp_caller_without_a_known_token_gets_401_with_a_bearer_challenge(
    token: str | None,
) -> None:
    with pytest.raises(Unauthorized) as caught:
        principal_for(ConnectionInfo("tcp"), token or None, TOKENS)
    assert caught.value.status_code == 401
    assert caught.value.headers == {"WWW-Authenticate": "Bearer"}


def test_a_request_no_listener_vouched_for_is_refused() -> None:
    with pytest.raises(Forbidden):
        principal_for(None, TOKEN, TOKENS)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer {TOKEN}", TOKEN),
        (f"BEARER   {TOKEN}  ", TOKEN),
        (f"Basic {TOKEN}", None),
        ("Bearer", None),
        ("Bearer   ", None),
        (None, None),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_header(
    header: str | None, token: str | None
) -> None:
    assert bearer_token(request(header)) == token


def test_a_token_is_read_only_for_callers_it_identifies() -> None:
    sent = request(f"Bearer {TOKEN}")
    assert token_for(ConnectionInfo("tcp"), sent) == TOKEN
    for transport in ("uds", "admin", "project"):
        conn = ConnectionInfo(transport, PeerCred(pid=1, uid=1234, gid=99), project="p")
        assert token_for(conn, sent) is None, transport
    assert token_for(None, sent) is None  # refused anyway: nothing vouches for it


def test_the_token_store_checks_every_record_and_keeps_no_token() -> None:
    assert TOKENS.verify(TOKEN) == TOKENS.verify(TOKEN)
    record = TOKENS.verify(OTHER_TOKEN)
    assert record is not None
    assert record.name == "ops"
    assert TOKENS.verify("pt_unknown") is None
    assert TOKEN not in repr(record)
    assert TOKEN.encode() not in record.digest
