"""The fault suite's fixtures: the real three-broker cluster (the integration tests'
fixture) and the rows RELIABILITY.md gets at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faults.report import Rows
from tests.integration.conftest import kafka_cluster

__all__ = ["kafka_cluster", "rows"]


@pytest.fixture(scope="session")
def rows() -> Iterator[Rows]:
    collected = Rows()
    yield collected
    collected.write()
