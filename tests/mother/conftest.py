"""Fixtures: the module-scoped cluster of real nodes (see cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mother.cluster import Cluster, start_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with start_cluster() as running:
        yield running
