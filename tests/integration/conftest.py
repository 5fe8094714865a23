"""Real-broker and real-database fixtures. These tests fail (never skip) when Kafka or
PostgreSQL cannot be started."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import psycopg
import pytest

from localkafka import Broker, BrokerError, Cluster
from localpg import PostgresError, Server

pytestmark = pytest.mark.integration


def _cannot_start(what: str, exc: Exception) -> NoReturn:
    ci = " (CI=true)" if os.environ.get("CI") == "true" else ""
    pytest.fail(f"{what}{ci}: {exc}", pytrace=False)


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
            _cannot_start("integration tests need the real Kafka broker", exc)
    print(f"\nbroker ready on {broker.config.bootstrap}")
    yield broker.config.bootstrap
    if started_here:
        broker.stop()


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[Cluster]:
    """Three real brokers on 127.0.0.1:9192/9194/9196 (RF 3, min ISR 2), started for the
    module that uses them unless already up, and stopped after it if started here: three
    idle nodes take a fifth of a core, which the rest of the suite then runs without. A
    test that stops or kills a node starts it again before it ends."""
    cluster = Cluster()
    running = any(node.running_pid() is not None for node in cluster.nodes)
    try:
        cluster.start()
    except BrokerError as exc:
        _cannot_start("cluster tests need three real Kafka brokers", exc)
    print(f"\ncluster ready on {cluster.bootstrap}")
    yield cluster
    if not running:
        cluster.stop(at_once=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """A real PostgreSQL server on a free loopback port (binaries from Maven Central,
    cluster under var/postgres/), started for the session unless ours already runs."""
    server = Server()
    running = server.running() and server.answers()
    try:
        server.start()
    except PostgresError as exc:
        _cannot_start("sync tests need a real PostgreSQL server", exc)
    print(f"\nPostgreSQL ready on {server.config.host}:{server.port()}")
    yield server
    if not running:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: Server) -> Iterator[str]:
    """A new, empty database of its own for one test; dropped after it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_server.dsn(name)
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
