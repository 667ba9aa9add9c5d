"""The store's wiping and snapshots, the dotenv parser, and process hardening."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.agent.dotenv import parse_dotenv
from service.secrets.cache import SessionCache
from service.secrets.store import SecretStore
from tests.secrets.helpers import TRIPWIRE


def test_replace_wipes_the_old_values_in_place() -> None:
    store = SecretStore()
    store.replace({"A": TRIPWIRE})
    old_buffer = store.current._values["A"]
    store.replace({"A": "new"})
    assert bytes(old_buffer) == bytes(len(TRIPWIRE))


def test_a_held_snapshot_is_wiped_only_when_its_reader_leaves() -> None:
    store = SecretStore()
    store.replace({"A": "old"})
    with store.reading() as snapshot:
        buffer = snapshot._values["A"]
        store.clear()
        assert bytes(buffer) == b"old"
    assert bytes(buffer) == b"\0\0\0"


def test_a_value_is_copied_with_its_generation_and_leaves_no_reader_behind() -> None:
    store = SecretStore()
    first = store.replace({"A": "one"})
    value, generation = store.value_of("A")
    assert (value, generation) == (b"one", first.generation)
    assert store.value_of("B") == (None, first.generation)
    buffer = store.current._values["A"]
    store.clear()
    # No read is held any more: the retired set is wiped at once.
    assert bytes(buffer) == b"\0\0\0"
    assert value == b"one"  # the caller's copy is its own


def test_close_wipes_the_live_set() -> None:
    store = SecretStore()
    store.replace({"A": TRIPWIRE})
    buffer = store.current._values["A"]
    store.close()
    assert bytes(buffer) == bytes(len(TRIPWIRE))
    assert len(store.current) == 0


def test_reprs_show_no_values() -> None:
    store = SecretStore()
    store.replace({"A": TRIPWIRE})
    texts = [repr(store), str(store), repr(store.current), str(store.current)]
    assert all(TRIPWIRE not in t for t in texts)


def test_cache_ttl_is_capped_and_lock_wipes() -> None:
    now = [100.0]
    cache = SessionCache(max_ttl_secs=30, clock=lambda: now[0])
    assert cache.put("p", {"T": TRIPWIRE}, 9999) == 30
    buffer = cache._entries["p"].values["T"]
    now[0] += 31
    assert cache.purge_expired() == 1
    assert bytes(buffer) == bytes(len(TRIPWIRE))
    assert cache.get("p") is None


# dotenv


def test_dotenv_reads_comments_quotes_export_and_multiline() -> None:
    text = """
# a comment
export PLAIN = value with spaces   # trailing comment
HASH=pa#ss
EMPTY=
SINGLE='lit\\eral # kept'
DOUBLE="line1\\nline2 \\"q\\""
PEM="-----BEGIN-----
abc
-----END-----"
"""
    assert parse_dotenv(text) == {
        "PLAIN": "value with spaces",
        "HASH": "pa#ss",
        "EMPTY": "",
        "SINGLE": "lit\\eral # kept",
        "DOUBLE": 'line1\nline2 "q"',
        "PEM": "-----BEGIN-----\nabc\n-----END-----",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"A=1\n{TRIPWIRE}\n", "line 2: expected KEY=value"),
        (f"bad-key={TRIPWIRE}\n", "line 1: invalid key"),
        (f"A=1\nA={TRIPWIRE}\n", "line 2: duplicate key A"),
        (f'A="{TRIPWIRE}\n', "line 1: unterminated quoted value"),
        (f"A='{TRIPWIRE}' {TRIPWIRE}\n", "line 1: unexpected text after the closing quote"),
    ],
)
def test_dotenv_errors_name_the_line_and_never_quote_it(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_dotenv(text)
    assert TRIPWIRE not in str(info.value)


# Process hardening runs in a child: it is irreversible for the process that calls it.


def test_core_dumps_are_disabled_in_the_process_that_asks() -> None:
    code = (
        "import resource;"
        "from service.secrets.core_dumps import disable_core_dumps, is_dumpable;"
        "assert is_dumpable() is True;"
        "assert disable_core_dumps();"
        "assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0);"
        "assert is_dumpable() is False;"
        "print('hardened')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "hardened", result.stderr
