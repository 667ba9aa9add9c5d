"""`patina index` and `patina scry` as users run them: real processes, a real socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.process import PATINA, ServiceProcess, run_patina, short_tmp_dir

from .conftest import write_corpus


def test_index_then_scry_over_the_socket_and_pick_up_a_reindex_without_restart(
    tmp_path: Path,
) -> None:
    corpus = write_corpus(tmp_path / "shop")
    home = short_tmp_dir()
    env = {"PATINA_HOME": str(home)}
    service = ServiceProcess(home=home, env={"PATINA_KNOWLEDGE__ENABLED": "true"})
    try:
        indexed = run_patina("index", str(corpus), "--repo", "shop", env=env, timeout=300)
        assert indexed.returncode == 0, indexed.stderr.decode()
        assert b"shop: 5 indexed" in indexed.stdout
        service.start(timeout=120)

        found = run_patina("scry", "compute_backoff_delay", "--json", "--limit", "3", env=env)
        assert found.returncode == 0, found.stderr.decode()
        answer = json.loads(found.stdout)
        assert answer["results"][0]["path"] == "src/retry.py"
        assert answer["count"] <= 3

        # Another writer (the CLI) updates the index; the running service sees it.
        (corpus / "notes/airship.txt").write_text("The zeppelin hangar opens at dawn.\n")
        again = run_patina("index", str(corpus), "--repo", "shop", env=env, timeout=300)
        assert again.returncode == 0, again.stderr.decode()
        assert b"1 indexed, 5 unchanged" in again.stdout
        wide = {**env, "COLUMNS": "200"}
        table = run_patina("scry", "zeppelin hangar", "--mode", "lexical", env=wide)
        assert table.returncode == 0, table.stderr.decode()
        assert b"shop:notes/airship.txt:1-1" in table.stdout

        bad = run_patina("scry", "x", "--mode", "fuzzy", env=env)
        assert bad.returncode == 2
        assert b"--mode must be" in bad.stderr
    finally:
        service.kill()
        shutil.rmtree(home, ignore_errors=True)


def test_scry_without_a_service_fails_cleanly(tmp_path: Path) -> None:
    result = run_patina(
        "scry",
        "anything",
        "--socket",
        str(tmp_path / "none.sock"),
        env={"PATINA_HOME": str(tmp_path)},
    )
    assert result.returncode == 1
    assert b"cannot reach the service" in result.stderr


def test_index_no_wait_leaves_vectors_pending_and_says_so_then_a_plain_run_completes(
    tmp_path: Path,
) -> None:
    corpus = write_corpus(tmp_path / "shop")
    env = {"PATINA_HOME": str(tmp_path / "home")}
    quick = run_patina("index", str(corpus), "--no-wait", env=env, timeout=300)
    assert quick.returncode == 0, quick.stderr.decode()
    assert b"shop: lexical search ready after" in quick.stderr
    assert b"0 chunks embedded" in quick.stdout
    assert b"chunks have no vector yet" in quick.stderr
    full = run_patina("index", str(corpus), env=env, timeout=300)
    assert full.returncode == 0, full.stderr.decode()
    assert b"5 unchanged" in full.stdout
    assert b" 0 chunks embedded" not in full.stdout  # the pending vectors, embedded now
    assert b"no vector yet" not in full.stderr


def _as_a_background_job() -> None:
    # A non-interactive shell starts `cmd &` with SIGINT ignored, and the child inherits it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_index_watch_indexes_a_saved_file_until_signalled(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    corpus = write_corpus(tmp_path / "shop")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
    env["PATINA_HOME"] = str(home)
    proc = subprocess.Popen(
        [PATINA, "index", str(corpus), "--watch", "--no-wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_as_a_background_job,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"watching for changes" in line:
                break
        else:
            raise AssertionError("the watcher never started")
        (corpus / "notes/airship.txt").write_text("The zeppelin hangar opens at dawn.\n")
        index = home / "data/index.sqlite"
        deadline = time.monotonic() + 60
        found = False
        while not found and time.monotonic() < deadline:
            time.sleep(0.1)
            conn = sqlite3.connect(index)
            try:
                found = bool(
                    conn.execute(
                        "SELECT 1 FROM documents WHERE path = 'notes/airship.txt'"
                    ).fetchone()
                )
            finally:
                conn.close()
        assert found
        proc.send_signal(stop_signal)
        out, _err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 0
    assert b"shop: 1 updated, 0 removed" in out
