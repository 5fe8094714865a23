"""Real-broker fixtures. These tests fail (never skip) when Kafka cannot be started."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from localkafka import Broker, BrokerError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka broker on 127.0.0.1:9092, started for the session unless already up."""
    broker = Broker()
    ours_running = broker.running_pid() is not None
    foreign = not ours_running and broker.is_ready()
    started_here = False
    if not foreign:
        try:
            started_here = not ours_running
            broker.start()
        except BrokerError as exc:
            ci = " (CI=true)" if os.environ.get("CI") == "true" else ""
            pytest.fail(f"integration tests need the real Kafka broker{ci}: {exc}", pytrace=False)
    print(f"\nbroker ready on {broker.config.bootstrap}")
    yield broker.config.bootstrap
    if started_here:
        broker.stop()
