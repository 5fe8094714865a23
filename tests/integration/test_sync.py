"""``mailpulse sync`` end to end: provider webhooks in, the sender's SQLite and PostgreSQL
tables out, through a kill -9, a replay of the topic and a rebuild.

One address is suppressed (three soft bounces), unsuppressed (a later delivery) and
suppressed again (three more), among forty hard-bounced ones. Each subscriber is killed
-9 between a batch's database commit and its offset commit, so its restart is handed
that batch again. The tables are read with plain sqlite3 and psycopg, not through sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import aiohttp
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sync import SuppressionList
from tests.integration.helpers import eventually, read_all, wait_committed
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import REPO, running_ingest, service_process

FLAPPY = "flappy@example.com"
BULK = [f"bulk{i}@example.com" for i in range(40)]
# The row without its wall-clock column (updated_at), and the journal without applied_at.
STATE = (
    "SELECT address, scope, suppressed, reason, cause, command_id, kafka_partition, "
    "kafka_offset, commands FROM mailpulse_suppressions ORDER BY address, scope"
)
JOURNAL = (
    "SELECT command_id, address, action, scope, kafka_partition, kafka_offset "
    "FROM mailpulse_suppressions_applied ORDER BY command_id"
)
EVERYTHING = (
    "SELECT * FROM mailpulse_suppressions ORDER BY address, scope",
    "SELECT * FROM mailpulse_suppressions_applied ORDER BY command_id",
)


@dataclass
class Subscriber:
    """One sender database and the ``mailpulse sync`` processes that keep it."""

    name: str
    env: dict[str, str]
    query: Callable[[str], list[tuple[Any, ...]]]
    workdir: Path
    runs: int = 0

    def process(self, *, slow: bool = False) -> ContextManager[Popen[bytes]]:
        self.runs += 1
        log = self.log(self.runs)
        if slow:
            extra = {"MAILPULSE_SYNC__BATCH_MAX_RECORDS": "5", "MAILPULSE_TEST_SYNC_PAUSE_S": "1"}
            return service_process(
                "tests.integration.sync_slow_commit", [], {**self.env, **extra}, log
            )
        return service_process("processors.ops", ["sync"], self.env, log)

    def log(self, run: int) -> Path:
        return self.workdir / f"sync-{self.name}-{run}.log"

    def log_events(self, run: int) -> list[dict[str, Any]]:
        lines = self.log(run).read_text().splitlines() if self.log(run).exists() else []
        return [orjson.loads(line) for line in lines if line.startswith("{")]

    def db_commits(self, run: int) -> int:
        """How many batches the slow subscriber's run committed to the database."""
        return self.log(run).read_text().count("db-committed") if self.log(run).exists() else 0

    def journal_ids(self) -> set[str]:
        with contextlib.suppress(sqlite3.OperationalError, psycopg.errors.UndefinedTable):
            return {row[0] for row in self.query(JOURNAL)}
        return set()

    def everything(self) -> list[list[tuple[Any, ...]]]:
        return [self.query(sql) for sql in EVERYTHING]

    async def cli(self, *args: str) -> tuple[int, str]:
        env = {**os.environ, "MAILPULSE_CONFIG": str(REPO / "config" / "dev.toml"), **self.env}
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "processors.ops", "sync", *args),
            env=env,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode is not None
        return proc.returncode, out.decode()


def _sqlite_query(path: Path) -> Callable[[str], list[tuple[Any, ...]]]:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return conn.execute(sql).fetchall()

    return query


def _pg_query(dsn: str) -> Callable[[str], list[tuple[Any, ...]]]:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

    return query


def _subscribers(p: Pipeline, postgres_dsn: str, tmp_path: Path) -> list[Subscriber]:
    base = {
        "MAILPULSE_SYNC__BOOTSTRAP_SERVERS": p.bootstrap,
        "MAILPULSE_SYNC__TOPIC_PREFIX": p.prefix,
        "MAILPULSE_SYNC__PROGRESS_INTERVAL_S": "0.5",
        "MAILPULSE_SYNC__POLL_TIMEOUT_MS": "200",
    }
    lite = tmp_path / "sender.db"
    return [
        Subscriber(
            "sqlite",
            {
                **base,
                "MAILPULSE_SYNC__DSN": f"sqlite:///{lite}",
                "MAILPULSE_SYNC__GROUP_ID": p.prefix + "sync-sqlite",
            },
            _sqlite_query(lite),
            tmp_path,
        ),
        Subscriber(
            "postgres",
            {
                **base,
                "MAILPULSE_SYNC__DSN": postgres_dsn,
                "MAILPULSE_SYNC__GROUP_ID": p.prefix + "sync-postgres",
            },
            _pg_query(postgres_dsn),
            tmp_path,
        ),
    ]


def _soft_bounces(first: int, minute: int) -> list[dict[str, Any]]:
    return [
        nexus_event("bounced.soft", FLAPPY, n=first + i, at=f"2026-05-13T10:{minute + i:02d}:00Z")
        for i in range(3)
    ]


def _flappy_actions(commands: list[dict[str, Any]]) -> list[str]:
    return [c["change"]["action"] for c in commands if c["address"] == FLAPPY]


async def _post_all(p: Pipeline, s: aiohttp.ClientSession, events: list[dict[str, Any]]) -> None:
    for event in events:
        assert await p.post_nexus(s, event) == 200


async def _caught_up(p: Pipeline, sub: Subscriber, ids: set[str], records: int) -> None:
    await eventually(
        lambda: asyncio.to_thread(sub.journal_ids),
        lambda found: found == ids,
        timeout=60,
        what=f"{sub.name}: every command in the journal",
    )
    group = sub.env["MAILPULSE_SYNC__GROUP_ID"]
    committed = await wait_committed(p.bootstrap, group, p.topic("suppression.commands"), records)
    assert committed == records, f"{sub.name}: {committed} of {records} offsets committed"


async def _reset_offsets(bootstrap: str, group: str, topic: str) -> None:
    """Commit offset 0 on every partition for ``group``, once its last member has left
    (a commit from outside while it still rebalances may not hold), and check it held."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:

        async def state() -> str:
            [described] = await admin.describe_consumer_groups([group])
            return str(described.to_object()["groups"][0]["state"])

        await eventually(state, lambda s: s == "Empty", timeout=30, what=f"{group} empty")
        # Auto-commit off: with it, stop() commits the positions the consumer fetched at
        # assign() (the old committed offsets) over the reset, partition by partition.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = await consumer._client.fetch_all_metadata()
            tps = [TopicPartition(topic, n) for n in partitions.partitions_for_topic(topic) or ()]
            consumer.assign(tps)
            await consumer.commit(dict.fromkeys(tps, 0))
        finally:
            await consumer.stop()
        offsets = await admin.list_consumer_group_offsets(group)
        assert {tp: m.offset for tp, m in offsets.items()} == dict.fromkeys(tps, 0)
    finally:
        await admin.close()


@contextlib.contextmanager
def _both(subs: list[Subscriber]) -> Iterator[None]:
    with subs[0].process(), subs[1].process():
        yield


async def _kill_mid_stream(sub: Subscriber) -> None:
    """Run the slow subscriber; kill -9 it while it waits to commit its second batch's
    offsets (the database already holds that batch)."""
    with sub.process(slow=True) as proc:
        await eventually(
            lambda: asyncio.to_thread(sub.db_commits, sub.runs),
            lambda n: n >= 2,
            timeout=60,
            what=f"{sub.name}: two batches in the database",
        )
        proc.kill()
        proc.wait()
    applied = await asyncio.to_thread(sub.journal_ids)
    assert 0 < len(applied) < len(BULK) + 1, f"{sub.name}: killed mid-stream"


async def test_sync_follows_webhooks_through_kill_replay_and_rebuild(
    kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    subs = _subscribers(p, postgres_dsn, tmp_path)
    topic = p.topic("suppression.commands")
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        with p.worker() as worker:
            at = "2026-05-13T09:00:00Z"
            bulk = [nexus_event("bounced.hard", a, n=100 + i, at=at) for i, a in enumerate(BULK)]
            await _post_all(p, s, [*_soft_bounces(1, 1), *bulk])
            await eventually(
                p.commands,
                lambda cs: _flappy_actions(cs) == ["suppress"] and len(cs) == len(BULK) + 1,
                timeout=120,
                what="the first suppression and the bulk's",
            )
            await asyncio.gather(*(_kill_mid_stream(sub) for sub in subs))
            with _both(subs):
                await _post_all(
                    p, s, [nexus_event("delivered", FLAPPY, n=10, at="2026-05-13T10:04:00Z")]
                )
                await eventually(
                    p.commands,
                    lambda cs: _flappy_actions(cs) == ["suppress", "unsuppress"],
                    what="the delivery lifts it",
                )
                await _post_all(p, s, _soft_bounces(11, 5))
                commands = await eventually(
                    p.commands,
                    lambda cs: _flappy_actions(cs) == ["suppress", "unsuppress", "suppress"],
                    what="three more soft bounces suppress it again",
                )
                records = len(await read_all(p.bootstrap, topic))
                ids = {c["command_id"] for c in commands}
                for sub in subs:
                    await _caught_up(p, sub, ids, records)
            worker.kill()  # its part is done; a graceful stop would only cost time
            worker.wait()
    await _check_final_state(subs, commands)
    for sub in subs:
        # The restart was handed the batch whose offsets the kill -9 left uncommitted.
        events = sub.log_events(2)
        assert max(e.get("repeats", 0) for e in events) >= 1, f"{sub.name}: no repeat seen"
        assert any(e["event"] == "sync caught up" for e in events)
    await _check_replay_and_rebuild(p, subs, ids, records)
    _no_password_in_logs(tmp_path, postgres_dsn)


def _no_password_in_logs(logs: Path, dsn: str) -> None:
    password = dsn.split(":")[2].split("@")[0]
    for log in logs.glob("sync-*.log"):
        assert password not in log.read_text(), f"{log.name} shows the database password"


async def _check_final_state(subs: list[Subscriber], commands: list[dict[str, Any]]) -> None:
    latest = {c["address"]: c["command_id"] for c in commands}
    per_address = {a: len({c["command_id"] for c in commands if c["address"] == a}) for a in latest}
    for sub in subs:
        rows = await asyncio.to_thread(sub.query, STATE)
        assert len(rows) == 2 * len(latest), sub.name
        for address, scope, suppressed, reason, _cause, command_id, *_pos, count in rows:
            assert command_id == latest[address], (sub.name, address)  # the newest command won
            assert count == per_address[address], (sub.name, address)  # each applied once
            if address == FLAPPY:
                expected = "soft_bounce_threshold" if scope == "all" else None
            else:
                expected = "hard_bounce" if scope == "all" else None
            assert (bool(suppressed), reason) == (expected is not None, expected), (
                sub.name,
                address,
                scope,
            )
        dsn = sub.env["MAILPULSE_SYNC__DSN"]
        with SuppressionList(dsn) as suppressions:
            assert suppressions.is_suppressed("Flappy@Example.com", "marketing")
            assert suppressions.is_suppressed(BULK[0], "all")
            assert not suppressions.is_suppressed("never-bounced@example.com", "all")


async def _check_replay_and_rebuild(
    p: Pipeline, subs: list[Subscriber], ids: set[str], records: int
) -> None:
    before = {sub.name: await asyncio.to_thread(sub.everything) for sub in subs}
    for sub in subs:
        group = sub.env["MAILPULSE_SYNC__GROUP_ID"]
        await _reset_offsets(p.bootstrap, group, p.topic("suppression.commands"))
    with _both(subs):
        for sub in subs:
            await eventually(
                lambda sub=sub: asyncio.to_thread(sub.log_events, sub.runs),  # type: ignore[misc]
                lambda events: any(e.get("repeats") == records and e["lag"] == 0 for e in events),
                timeout=60,
                what=f"{sub.name}: the whole topic replayed",
            )
    for sub in subs:
        assert await asyncio.to_thread(sub.everything) == before[sub.name], (
            f"{sub.name}: replay changed the table"
        )
        state = await asyncio.to_thread(sub.query, STATE)
        journal = await asyncio.to_thread(sub.query, JOURNAL)
        code, out = await sub.cli("rebuild")
        assert code == 0, out
        assert f"from {records} records: {len(ids)} commands applied" in out
        # Not a terminal: the progress bar's plain lines, the last one at 100 %.
        topic = p.topic("suppression.commands")
        assert f"sync rebuild {topic}: {records}/{records} records (100%" in out, out
        assert await asyncio.to_thread(sub.query, STATE) == state, f"{sub.name}: rebuild differs"
        assert await asyncio.to_thread(sub.query, JOURNAL) == journal
        code, out = await sub.cli("status", "--json")
        assert code == 0, out
        status = orjson.loads(out.splitlines()[-1])
        assert (status["lag"], status["applied"], status["rows"]) == (0, len(ids), len(state))
        assert "***" in status["dsn"] or status["dsn"].startswith("sqlite")
