"""Fixtures for TLS tests: one set of dev certificates per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from service.devcerts import DevCertFiles, write_dev_certs
from tests.support.process import short_tmp_dir


@pytest.fixture(scope="session")
def dev_certs() -> Iterator[DevCertFiles]:
    directory = short_tmp_dir("certs")
    yield write_dev_certs(directory / "certs")
    shutil.rmtree(directory, ignore_errors=True)
