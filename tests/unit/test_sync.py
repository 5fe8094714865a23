"""The subscriber's pure fold and the SQLite store: latest wins by topic position, repeats
change nothing, and no order, batching or rewind of the deliveries changes the table."""

from __future__ import annotations

import io
import random
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from processors.ops import cli
from sync import subscriber
from sync.apply import Delivered, plan
from sync.client import NotSynced, SuppressionList
from sync.dsn import redact, scrub
from sync.errors import BadCommand, ConfigError, StoreUnavailable
from sync.store import SqliteStore, Store, Tables, open_store
from sync.subscriber import Database, Progress, decode
from tests.fixtures.commands import T0, command, deliveries, positioned, topics

TABLES = Tables("mailpulse_suppressions")
NOW = datetime(2026, 6, 1, tzinfo=UTC)
# What the table says, without the wall-clock columns (updated_at, applied_at).
ROWS = (
    "SELECT address, scope, suppressed, reason, cause, since, command_id, issued_at, "
    "kafka_partition, kafka_offset, commands FROM mailpulse_suppressions ORDER BY 1, 2"
)
JOURNAL = (
    "SELECT command_id, address, action, scope, reason, kafka_partition, kafka_offset "
    "FROM mailpulse_suppressions_applied ORDER BY 1"
)


def test_latest_by_offset_wins_within_a_batch_not_the_latest_issued_at() -> None:
    # A late delivery lifts a soft-bounce suppression with an *older* issued_at.
    suppress = command("a@example.com", {"all": "soft_bounce_threshold"}, "all", cause="b3")
    lift = command("a@example.com", {}, "all", cause="late-delivery", at=T0 - timedelta(minutes=5))
    step = plan(positioned([suppress, lift]), applied=set())
    rows = {r.scope: r for r in step.rows}
    assert not rows["all"].suppressed
    assert rows["all"].command_id == lift.command_id
    assert step.counts == {"a@example.com": 2}


def test_repeats_within_a_batch_and_of_applied_ids_change_nothing() -> None:
    one = command("a@example.com", {"all": "hard_bounce"}, "all", cause="e1")
    two = command("b@example.com", {"marketing": "unsubscribe"}, "marketing", cause="e2")
    batch = positioned([one, two, one])
    step = plan(batch, applied={two.command_id})
    assert [d.command for d in step.fresh] == [one]
    assert step.repeats == 2
    assert {r.address for r in step.rows} == {"a@example.com"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "s.db")
    s.prepare(TABLES)
    yield s
    s.close()


def _read(path: Path) -> tuple[list[Any], list[Any]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(ROWS).fetchall(), conn.execute(JOURNAL).fetchall()


def _apply_all(store: Store, batches: Sequence[Sequence[Delivered]]) -> None:
    for batch in batches:
        store.apply(batch, NOW, TABLES)


def _fresh_store(tmp: Path) -> tuple[SqliteStore, Path]:
    path = tmp / f"{uuid.uuid4().hex}.db"
    s = SqliteStore(path)
    s.prepare(TABLES)
    return s, path


_SLOW_OK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SLOW_OK
@given(data=st.data(), topic=topics())
def test_any_delivery_schedule_gives_the_in_order_table(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, topic: list[Delivered]
) -> None:
    """Crash repeats, offset resets and any batching: the table of one in-order pass."""
    tmp = tmp_path_factory.mktemp("sched")
    expected_store, expected_path = _fresh_store(tmp)
    _apply_all(expected_store, [[d] for d in topic])
    store, path = _fresh_store(tmp)
    _apply_all(store, data.draw(deliveries(topic)))
    rows, journal = _read(path)
    assert (rows, journal) == _read(expected_path)
    # Every distinct command applied exactly once; each row counts its address's commands.
    ids = {d.command.command_id for d in topic}
    assert sorted(j[0] for j in journal) == sorted(ids)
    for row in rows:
        assert row[-1] == len({d.command.command_id for d in topic if d.command.address == row[0]})
    expected_store.close()
    store.close()


@_SLOW_OK
@given(topic=topics(repeats=False), seed=st.integers(0, 2**32 - 1), cut=st.integers(1, 5))
def test_distinct_commands_in_any_order_give_the_same_table(
    tmp_path_factory: pytest.TempPathFactory, topic: list[Delivered], seed: int, cut: int
) -> None:
    tmp = tmp_path_factory.mktemp("perm")
    in_order, in_order_path = _fresh_store(tmp)
    in_order.apply(topic, NOW, TABLES)
    shuffled = list(topic)
    random.Random(seed).shuffle(shuffled)
    store, path = _fresh_store(tmp)
    _apply_all(store, [shuffled[i : i + cut] for i in range(0, len(shuffled), cut)])
    assert _read(path) == _read(in_order_path)
    in_order.close()
    store.close()


def test_a_replayed_batch_changes_no_byte(store: SqliteStore, tmp_path: Path) -> None:
    batch = positioned(
        [
            command("a@example.com", {"all": "hard_bounce"}, "all", cause="e1"),
            command(
                "a@example.com", {"all": "hard_bounce", "marketing": "x"}, "marketing", cause="e2"
            ),
        ]
    )
    store.apply(batch, NOW, TABLES)
    full = "SELECT * FROM mailpulse_suppressions ORDER BY 1, 2"
    with sqlite3.connect(tmp_path / "s.db") as conn:
        before = conn.execute(full).fetchall()
    again = store.apply(batch, NOW + timedelta(hours=1), TABLES)
    assert (len(again.fresh), again.repeats) == (0, 2)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute(full).fetchall() == before


def test_swap_replaces_the_table_and_journal(store: SqliteStore, tmp_path: Path) -> None:
    old = positioned([command("a@example.com", {"all": "hard_bounce"}, "all", cause="e1")])
    store.apply(old, NOW, TABLES)
    building = TABLES.building()
    store.prepare(building)
    new = positioned([command("b@example.com", {"all": "complaint"}, "all", cause="e2")])
    store.apply(new, NOW, building)
    store.swap(building, TABLES)
    rows, journal = _read(tmp_path / "s.db")
    assert {r[0] for r in rows} == {"b@example.com"}
    assert [j[1] for j in journal] == ["b@example.com"]
    store.prepare(building)  # a second rebuild can start again
    store.swap(building, TABLES)
    assert _read(tmp_path / "s.db") == ([], [])


def test_is_suppressed_normalises_and_checks_all_for_marketing(
    store: SqliteStore, tmp_path: Path
) -> None:
    store.apply(
        positioned(
            [
                command("hard@example.com", {"all": "hard_bounce"}, "all", cause="e1"),
                command("unsub@example.com", {"marketing": "unsubscribe"}, "marketing", cause="e2"),
                command("lifted@example.com", {}, "all", cause="e3"),
            ]
        ),
        NOW,
        TABLES,
    )
    with SuppressionList(SecretStr(f"sqlite:///{tmp_path / 's.db'}")) as suppressions:
        assert suppressions.is_suppressed(" Hard@Example.COM ", "all")
        assert suppressions.is_suppressed("hard@example.com", "marketing")
        assert suppressions.is_suppressed("unsub@example.com", "marketing")
        assert not suppressions.is_suppressed("unsub@example.com", "all")
        assert not suppressions.is_suppressed("lifted@example.com", "marketing")
        assert not suppressions.is_suppressed("never@example.com", "all")
        with pytest.raises(ValueError, match="not an email address"):
            suppressions.is_suppressed("not-an-address", "all")


def test_a_database_sync_never_ran_on_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotSynced, match="run `mailpulse sync`"):
        SuppressionList(f"sqlite:///{tmp_path / 'empty.db'}")


def test_dsns_are_parsed_and_passwords_never_shown() -> None:
    assert redact("postgresql://app:s3cret@db:5432/mail") == "postgresql://app:***@db:5432/mail"
    assert redact("postgresql://db/mail") == "postgresql://db/mail"
    assert redact("sqlite:///var/x.db") == "sqlite:///var/x.db"
    for bad in ("mysql://x/y", "sqlite://x.db", "host=db password=s3cret"):
        with pytest.raises(ConfigError) as refused:
            open_store(bad)
        assert "s3cret" not in str(refused.value)
    with pytest.raises(ConfigError, match="table name"):
        Tables("x; DROP TABLE y")


def test_every_spelling_of_a_password_is_masked() -> None:
    assert redact("postgresql://app@db/mail?password=s3cret&sslmode=require") == (
        "postgresql://app@db/mail?password=***&sslmode=require"
    )
    assert (
        redact("postgresql://app:p%40ss@[::1]:5432/mail") == "postgresql://app:***@[::1]:5432/mail"
    )
    dsn = "postgresql://app:p%40ss%zz@db/mail?password=other"
    said = 'invalid percent-encoded token: "p%40ss%zz"; p@ss%zz; "other"'
    assert scrub(said, dsn) == 'invalid percent-encoded token: "***"; ***; "***"'


def test_a_dsn_libpq_cannot_parse_is_a_config_error_without_the_password() -> None:
    # libpq quotes the token it could not decode: here, the password.
    with pytest.raises(ConfigError) as refused:
        open_store("postgresql://app:s3cret%zz@127.0.0.1:1/mail")
    assert "s3cret" not in str(refused.value)
    assert "postgresql://app:***@127.0.0.1:1/mail" in str(refused.value)


def test_a_sqlite_file_that_cannot_be_opened_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match="cannot open sqlite:///"):
        open_store(f"sqlite:///{blocker / 'sub' / 's.db'}")


def _record(value: bytes | None, offset: int = 7) -> Any:
    return ConsumerRecord(
        topic="suppression.commands", partition=2, offset=offset, timestamp=0,
        timestamp_type=0, key=b"a@example.com", value=value, checksum=None,
        serialized_key_size=13, serialized_value_size=len(value or b""), headers=(),
    )  # fmt: skip


def test_decode_reads_commands_and_stops_at_one_it_cannot_read() -> None:
    c = command("a@example.com", {"all": "hard_bounce"}, "all", cause="e1")
    assert decode(_record(c.model_dump_json().encode())) == Delivered(2, 7, c)
    assert decode(_record(None)) is None  # a tombstone applies nothing
    newer = orjson.dumps({**c.model_dump(mode="json"), "schema_version": 2})
    with pytest.raises(BadCommand, match=r"suppression.commands\[2\]@7 .*schema_version"):
        decode(_record(newer))


async def test_a_driver_error_becomes_store_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")  # never prepared: no table
    db = Database(store)
    batch = positioned([command("a@example.com", {}, "all", cause="e1")])
    with pytest.raises(
        StoreUnavailable, match=r"sqlite:///.*s\.db: OperationalError: no such table"
    ):
        await db.call(store.apply, batch, NOW, TABLES)
    db.close()
    store.close()


class _Lagging:
    """The three calls ``consumer_lag`` makes, on one partition at a settable position."""

    def __init__(self, end: int) -> None:
        self.tp, self.end, self.at = TopicPartition("suppression.commands", 0), end, 0

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {self.tp: self.end}

    async def position(self, tp: TopicPartition) -> int:
        return self.at


async def test_catch_up_shows_a_bar_until_caught_up_and_logs_rate_and_eta(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(subscriber.log, "info", lambda event, **kw: logged.append((event, kw)))
    out = io.StringIO()  # no terminal: the bar's plain lines
    consumer: Any = _Lagging(end=10)
    p = Progress(interval_s=1e-6)
    p.open_bar(out)
    consumer.at, p.applied = 4, 4
    await p.report(consumer, idle=False)
    consumer.at, p.applied, p.repeats = 10, 9, 1
    await p.report(consumer, idle=True)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sync catch-up: 4/10 commands (40%, "), lines
    assert "ETA" in lines[0]
    assert lines[-1].startswith("sync catch-up: 10/10 commands (100%, "), lines
    assert [event for event, _ in logged] == ["sync progress", "sync caught up"]
    first, last = logged[0][1], logged[1][1]
    assert (first["lag"], first["per_s"] > 0, isinstance(first["eta_s"], int)) == (6, True, True)
    assert (last["lag"], last["repeats"], last["eta_s"]) == (0, 1, None)
    consumer.at = consumer.end = 12  # caught up again later: the bar stays closed
    await p.report(consumer, idle=True, final=True)
    assert out.getvalue().splitlines() == lines


def test_the_cli_says_a_bad_dsn_in_one_line_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAILPULSE_SYNC__DSN", "host=db password=s3cret")
    assert cli.main(["sync", "status"]) == 1
    err = capsys.readouterr().err
    assert err == "mailpulse sync status: no URL scheme: use sqlite:///PATH or postgresql://...\n"
