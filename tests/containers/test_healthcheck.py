"""The image's health probe (scripts/container-healthcheck.py) against a real service."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.containers.tools import ROOT, run
from tests.support.process import running_service

PROBE = ROOT / "scripts" / "container-healthcheck.py"


def test_probe_passes_against_a_running_service() -> None:
    with running_service() as service:
        run([sys.executable, PROBE], env={"PATINA_RUN_DIR": str(service.run_dir)})
        run([sys.executable, PROBE, service.socket])


def test_probe_fails_when_nothing_listens(short_tmp: Path) -> None:
    proc = run([sys.executable, PROBE, short_tmp / "serve.sock"], check=False)
    assert proc.returncode == 1
    assert "unhealthy" in proc.stderr


def test_probe_fails_when_the_service_is_gone(short_tmp: Path) -> None:
    with running_service() as service:
        socket = service.socket
        service.stop()
    proc = run([sys.executable, PROBE, socket], check=False)
    assert proc.returncode == 1


def test_sidecar_probe_follows_the_pushed_set(short_tmp: Path) -> None:
    source = short_tmp / "secrets.env"
    source.write_text("API_KEY=first\n")
    with running_service() as service:
        args = [
            sys.executable,
            PROBE,
            "sidecar",
            "--source",
            f"dotenv:{source}",
            "--admin-socket",
            service.admin_socket,
        ]
        before = run(args, check=False)
        assert before.returncode == 1, "nothing pushed yet"
        patina = Path(sys.executable).with_name("patina")
        run(
            [
                patina,
                "sidecar",
                "--once",
                "--source",
                f"dotenv:{source}",
                "--admin-socket",
                service.admin_socket,
            ]
        )
        after = run(args)
        assert "first" not in after.stdout + after.stderr
