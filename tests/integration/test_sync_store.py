"""The PostgreSQL store against a real server: for any delivery schedule (crash repeats,
offset resets, any batching) it ends with the same table and journal as the SQLite store
given the same deliveries, and a rebuild's swap works twice over."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.apply import Delivered
from sync.errors import StoreUnavailable
from sync.store import PostgresStore, SqliteStore, Store, Tables
from tests.fixtures.commands import command, deliveries, positioned, topics

NOW = datetime(2026, 6, 1, tzinfo=UTC)
COLUMNS = (
    "address, scope, suppressed, reason, cause, since, command_id, issued_at, "
    "kafka_partition, kafka_offset, commands"
)


def _normal(value: Any) -> Any:
    """One spelling for both databases: booleans as bool, timestamps as aware datetimes."""
    if isinstance(value, str) and value[:2] == "20" and "T" in value:
        return datetime.fromisoformat(value)
    return value


def _rows(fetch: Any, t: Tables) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rows = fetch(f"SELECT {COLUMNS} FROM {t.state} ORDER BY address, scope")
    journal = fetch(
        "SELECT command_id, address, action, scope, reason, kafka_partition, kafka_offset "
        f"FROM {t.applied} ORDER BY command_id"
    )
    fixed = [(r[0], r[1], bool(r[2]), *map(_normal, r[3:])) for r in rows]
    return fixed, [tuple(j) for j in journal]


@pytest.fixture
def pg(postgres_dsn: str) -> Iterator[tuple[PostgresStore, psycopg.Connection[Any]]]:
    store = PostgresStore(postgres_dsn)
    with psycopg.connect(postgres_dsn, autocommit=True) as reader:
        yield store, reader
    store.close()


def _apply_all(store: Store, tables: Tables, batches: Sequence[Sequence[Delivered]]) -> None:
    store.prepare(tables)
    for batch in batches:
        store.apply(batch, NOW, tables)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), topic=topics())
def test_postgres_and_sqlite_agree_on_any_schedule(
    pg: tuple[PostgresStore, psycopg.Connection[Any]],
    tmp_path: Path,
    data: st.DataObject,
    topic: list[Delivered],
) -> None:
    store, reader = pg
    tables = Tables(f"s_{uuid.uuid4().hex[:12]}")
    batches = data.draw(deliveries(topic))
    _apply_all(store, tables, batches)
    lite = SqliteStore(tmp_path / f"{tables.state}.db")
    _apply_all(lite, tables, batches)
    in_pg = _rows(lambda sql: reader.execute(sql).fetchall(), tables)
    assert in_pg == _rows(lambda sql: lite._conn.execute(sql).fetchall(), tables)
    assert sorted(j[0] for j in in_pg[1]) == sorted({d.command.command_id for d in topic})
    lite.close()


def test_postgres_swap_twice_and_is_suppressed(
    pg: tuple[PostgresStore, psycopg.Connection[Any]],
) -> None:
    store, reader = pg
    live = Tables("mailpulse_suppressions")
    hard = command("a@example.com", {"all": "hard_bounce"}, "all", cause="e1")
    _apply_all(store, live, [positioned([hard])])
    for _ in range(2):  # the second swap meets the index names the first one left
        building = live.building()
        _apply_all(store, building, [positioned([hard])])
        store.swap(building, live)
    assert store.is_suppressed("a@example.com", ["all"], live)
    assert not store.is_suppressed("a@example.com", ["marketing"], live)
    tables = {
        r[0] for r in reader.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert tables == {live.state, live.applied}
    assert store.counts(live) == {"rows": 2, "suppressed": 1, "applied": 1}


def test_a_refused_login_names_the_server_never_the_password(postgres_dsn: str) -> None:
    wrong = postgres_dsn.replace("@", "x-wrong@", 1)
    password = wrong.split(":")[2].split("@")[0]
    with pytest.raises(StoreUnavailable) as refused:
        PostgresStore(wrong)
    assert "postgresql://mailpulse:***@127.0.0.1" in str(refused.value)
    assert password not in str(refused.value)
    assert "password authentication failed" in str(refused.value)
