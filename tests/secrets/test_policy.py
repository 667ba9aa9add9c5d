"""The consumers policy as a unit: which entry governs a caller, and what it lets it do."""

from __future__ import annotations

import pytest

from service.principal import LOCAL_SCOPES, Principal
from service.secrets.policy import (
    VERB_CACHE,
    VERB_LIST,
    VERB_READ,
    Policy,
    PolicyError,
    default_policy,
    parse_policy,
)

OWNER_UID = 1000


def uds(uid: int) -> Principal:
    return Principal("uds", f"uid:{uid}", LOCAL_SCOPES, uid=uid)


def tcp(token: str | None = None, subject: str | None = None) -> Principal:
    return Principal("tcp", "tcp", frozenset({"secrets"}), token_name=token, cert_subject=subject)


def policy(**data: object) -> Policy:
    return parse_policy(dict(data), owner_uid=OWNER_UID, source="test")


def test_without_a_file_the_owner_reads_all_and_others_only_cache() -> None:
    default = default_policy(OWNER_UID)
    assert default.may_read(uds(OWNER_UID), "ANYTHING")
    assert default.readable(uds(OWNER_UID), ["B", "A"]) == ["B", "A"]
    for stranger in (uds(OWNER_UID + 1), tcp("ci"), tcp(subject="CN=x")):
        assert not default.may_read(stranger, "ANYTHING")
        assert default.readable(stranger, ["A"]) == []
        assert default.may(stranger, VERB_CACHE)


def test_the_owner_is_the_owner_only_on_the_unix_socket() -> None:
    # A TCP caller whose principal somehow carried the owner's uid is still a TCP caller.
    spoof = Principal("tcp", "tcp", frozenset({"secrets"}), uid=OWNER_UID)
    assert not default_policy(OWNER_UID).may_read(spoof, "ANYTHING")


def test_entries_match_in_file_order_and_globs_match_whole_names() -> None:
    rules = policy(
        consumers=[
            {"uid": 2001, "allow": ["AWS_*", "GITHUB_TOKEN"]},
            {"uid": 2001, "allow": ["*"]},  # never reached: the first match wins
            {"token": "ci", "allow": ["DEPLOY_?"]},
        ]
    )
    assert rules.may_read(uds(2001), "AWS_KEY")
    assert rules.may_read(uds(2001), "GITHUB_TOKEN")
    assert not rules.may_read(uds(2001), "GITHUB_TOKEN_2")
    assert not rules.may_read(uds(2001), "OTHER")
    assert rules.may_read(tcp("ci"), "DEPLOY_1")
    assert not rules.may_read(tcp("ci"), "DEPLOY_10")


def test_a_uid_entry_never_matches_a_tcp_caller_and_tokens_need_their_subject() -> None:
    rules = policy(
        consumers=[
            {"uid": 2001, "allow": ["*"]},
            {"token": "agent", "subject": "CN=agent-1", "allow": ["*"]},
            {"subject": "CN=robot", "allow": ["ROBOT_*"]},
        ]
    )
    assert not rules.may_read(Principal("tcp", "t", frozenset(), uid=2001), "X")
    assert rules.may_read(tcp("agent", "CN=agent-1"), "X")
    assert not rules.may_read(tcp("agent", "CN=someone-else"), "X")
    assert not rules.may_read(tcp("agent"), "X")
    assert rules.may_read(tcp("any-token", "CN=robot"), "ROBOT_ARM")


def test_scopes_limit_what_an_entry_grants() -> None:
    rules = policy(
        consumers=[
            {"uid": 2001, "scopes": ["read"], "allow": ["*"]},
            {"uid": 2002, "scopes": ["list"], "allow": ["*"]},
            {"uid": 2003, "scopes": ["cache"], "allow": ["*"]},
        ]
    )
    reader, lister, cacher = uds(2001), uds(2002), uds(2003)
    assert rules.may_read(reader, "A")
    assert rules.readable(reader, ["A"]) == []  # listing needs `list` too
    assert not rules.may_read(lister, "A")
    assert rules.readable(lister, ["A"]) == []  # and `read`: no names one cannot read
    assert rules.may(cacher, VERB_CACHE)
    assert not rules.may(cacher, VERB_READ)
    assert not rules.may(reader, VERB_LIST)


def test_the_owner_default_can_be_turned_off_but_an_entry_still_applies() -> None:
    rules = policy(owner_reads_all=False, consumers=[{"uid": OWNER_UID, "allow": ["MINE"]}])
    assert rules.may_read(uds(OWNER_UID), "MINE")
    assert not rules.may_read(uds(OWNER_UID), "OTHER")
    assert not policy(owner_reads_all=False).may_read(uds(OWNER_UID), "OTHER")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"consumers": [{"allow": ["*"]}]}, "needs one of uid, token or subject"),
        ({"consumers": [{"uid": 1, "token": "t"}]}, "uid cannot be combined"),
        ({"consumers": [{"uid": -1}]}, "uid must be a non-negative integer"),
        ({"consumers": [{"uid": 1, "scopes": ["write"]}]}, "unknown scopes ['write']"),
        ({"consumers": [{"uid": 1, "allow": ["A B"]}]}, "may hold only"),
        ({"extra": 1}, "unknown top-level keys ['extra']"),
    ],
)
def test_an_invalid_policy_is_refused_naming_the_entry(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(PolicyError, match="test") as caught:
        parse_policy(data, owner_uid=OWNER_UID, source="test")
    assert message in str(caught.value)
