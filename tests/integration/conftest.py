"""Real-broker fixtures. These tests fail (never skip) when Kafka cannot be started."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from localkafka import Broker, BrokerError, Cluster

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


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[Cluster]:
    """Three real brokers on 127.0.0.1:9192/9194/9196 (RF 3, min ISR 2), started for the
    session unless already up, and stopped again if started here. A test that stops or
    kills a node starts it again before it ends."""
    cluster = Cluster()
    running = any(node.running_pid() is not None for node in cluster.nodes)
    try:
        cluster.start()
    except BrokerError as exc:
        ci = " (CI=true)" if os.environ.get("CI") == "true" else ""
        pytest.fail(f"cluster tests need three real Kafka brokers{ci}: {exc}", pytrace=False)
    print(f"\ncluster ready on {cluster.bootstrap}")
    yield cluster
    if not running:
        cluster.stop()
