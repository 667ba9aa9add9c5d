"""The systemd unit, sysusers and tmpfiles entries under packaging/, checked by systemd's
own tools (scripts/install-system-deps.sh installs them). None needs systemd as PID 1:
`systemd-analyze verify` and `security --offline` read the unit from an alternate root
holding the unit, the distribution's units it depends on and an ExecStart to find."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
UNIT = PACKAGING / "systemd" / "patina-serve.service"
SYSUSERS = PACKAGING / "sysusers.d" / "patina-serve.conf"
TMPFILES = PACKAGING / "tmpfiles.d" / "patina-serve.conf"
SYSTEM_UNITS = next(
    p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()
)

# The hardening profile the unit must keep (remo-broker's, and more).
PROFILE = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "NoNewPrivileges": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictSUIDSGID": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectProc": "invisible",
    "RestrictNamespaces": "yes",
    "CapabilityBoundingSet": "",
    "LimitCORE": "0",
}


def _root(tmp_path: Path, unit_text: str) -> Path:
    """An alternate root: the unit, systemd's own units, and the programs it runs."""
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/patina-serve.service").write_text(unit_text)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    for line in unit_text.splitlines():
        if line.startswith(("ExecStart=", "ExecReload=")):
            program = Path(line.split("=", 1)[1].split()[0])
            target = root / program.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("#!/bin/sh\n")
            target.chmod(0o755)
    return root


def _verify(tmp_path: Path, unit_text: str) -> subprocess.CompletedProcess[str]:
    root = _root(tmp_path, unit_text)
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "patina-serve.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    result = _verify(tmp_path, UNIT.read_text())
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    # The check above can fail: a mistyped value is reported.
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strikt")
    result = _verify(tmp_path, broken)
    assert "Failed to parse protect system value" in result.stderr


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize(("key", "value"), sorted(PROFILE.items()))
def test_the_unit_keeps_the_hardening_profile(key: str, value: str) -> None:
    assert _directives(UNIT.read_text()).get(key) == [value]


def test_the_syscall_filter_is_the_system_service_set() -> None:
    assert "@system-service" in _directives(UNIT.read_text())["SystemCallFilter"]


def test_the_exposure_score_is_ok_or_better(tmp_path: Path) -> None:
    root = _root(tmp_path, UNIT.read_text())
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--root={root}", "patina-serve.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    score = re.search(r"Overall exposure level for patina-serve\.service: ([0-9.]+)", result.stdout)
    assert score is not None, result.stdout + result.stderr
    # systemd rates up to 1.9 as "OK", the best band; docs/systemd.md reports the figure.
    assert float(score.group(1)) <= 1.9


def test_sysusers_creates_the_patina_user(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(SYSUSERS)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    users = {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
    }
    assert users["patina"][5:7] == ["/var/lib/patina", "/usr/sbin/nologin"]


@pytest.mark.skipif(os.geteuid() != 0, reason="tmpfiles chowns to patina: needs root")
def test_tmpfiles_creates_private_directories_for_patina(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(["systemd-sysusers", f"--root={root}", str(SYSUSERS)], check=True, timeout=60)
    result = subprocess.run(
        ["systemd-tmpfiles", f"--root={root}", "--create", str(TMPFILES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modes = {d: (root / d).stat().st_mode & 0o7777 for d in ("run/patina", "var/lib/patina")}
    assert modes == {"run/patina": 0o750, "var/lib/patina": 0o700}
