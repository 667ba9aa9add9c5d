"""Static checks of the Dockerfile: hadolint, and the properties the image promises."""

from __future__ import annotations

import re

from tests.containers.tools import BIN, DOCKERFILE, ROOT, run


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per stage name (`FROM x AS name`)."""
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            current = named.setdefault(args.split()[-1], [])
        current.append((keyword, args))
    return named


def final_stage() -> list[tuple[str, str]]:
    return list(stages().values())[-1]


def test_hadolint_passes() -> None:
    run([BIN / "hadolint", "--failure-threshold", "info", DOCKERFILE])


def test_base_image_is_an_overridable_build_arg() -> None:
    pairs = instructions()
    assert pairs[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = [args for k, args in pairs if k == "FROM"]
    assert froms == [
        "${BASE_IMAGE} AS build",
        "${BASE_IMAGE} AS rootfs",
        # The runtime root as one layer, so what the rootfs stage deletes really is gone.
        "scratch AS runtime",
    ]


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = [args for k, args in final_stage() if k == "USER"]
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0


def test_runtime_stages_install_no_build_tools_and_take_only_the_venv() -> None:
    named = stages()
    for name in ("rootfs", "runtime"):
        runs = " ".join(args for k, args in named[name] if k == "RUN")
        for tool in ("apt-get install", "pip install", "gcc", "build-essential", "binutils"):
            assert tool not in runs, f"stage {name} runs {tool!r}"
    assert [a for k, a in named["rootfs"] if k == "COPY"] == [
        "scripts/container-healthcheck.py /usr/local/bin/patina-healthcheck",
        "--from=build /opt/patina /opt/patina",
    ]
    assert [a for k, a in named["runtime"] if k == "COPY"] == ["--from=rootfs / /"]
    # The installers are removed from the runtime root, not only left unused.
    rootfs_runs = " ".join(args for k, args in named["rootfs"] if k == "RUN")
    assert "dpkg --purge python3-pip" in rootfs_runs
    assert "pip uninstall --yes pip setuptools wheel" in rootfs_runs


def test_project_is_installed_from_its_wheel_under_the_constraints() -> None:
    runs = " ".join(args for k, args in instructions() if k == "RUN")
    assert 'pip" wheel --no-deps --wheel-dir /wheels .' in runs
    assert 'pip" install --require-virtualenv --no-deps -c constraints.txt /wheels/' in runs
    assert "-c constraints.txt -r requirements.txt" in runs


def test_model_and_tokenizer_are_verified_at_build_time() -> None:
    runs = [args for k, args in final_stage() if k == "RUN"]
    assert any("load_model_files" in r for r in runs)


def test_healthcheck_uses_the_unix_socket_in_shell_form() -> None:
    checks = [args for k, args in instructions() if k == "HEALTHCHECK"]
    assert len(checks) == 1
    # Shell form (CMD-SHELL in the image): podman 4.3 splits exec-form arguments on spaces.
    assert re.search(r"CMD patina-healthcheck(\s|$)", checks[0])
    assert "[" not in checks[0]


def test_entrypoint_is_exec_form() -> None:
    entry = [args for k, args in instructions() if k == "ENTRYPOINT"]
    assert entry == ['["patina"]']
    cmd = [args for k, args in instructions() if k == "CMD"]
    assert cmd == ['["serve"]']


def test_oci_labels_are_set() -> None:
    labels = " ".join(args for k, args in final_stage() if k == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_keeps_the_context_to_the_build_inputs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything is excluded first"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "setup.py",
        "constraints.txt",
        "README.md",
        "service",
        "scripts/container-healthcheck.py",
    }
