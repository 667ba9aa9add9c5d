"""Fixtures shared by every test package."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import short_tmp_dir


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path, for Unix sockets."""
    path = short_tmp_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
