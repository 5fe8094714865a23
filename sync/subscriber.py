"""``mailpulse sync``: apply ``suppression.commands`` to the sender's table, at least once.

The loop: poll a batch (its own consumer group, from the earliest offset the first time),
apply it in one database transaction (``Store.apply``), and only then commit the batch's
offsets. A crash anywhere in between repeats the batch and never skips it; a repeat is a
no-op, because the journal knows every applied ``command_id`` and a row only takes a
newer command. Database work runs on one thread of its own, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO, TypeAlias, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from pydantic import ValidationError

from processors.ops.progress import Reporter, progress
from schemas.commands import SuppressionCommand
from sync.apply import Delivered, Plan
from sync.errors import BadCommand, StoreUnavailable
from sync.settings import SyncSettings
from sync.store import Store, Tables

log = structlog.get_logger("mailpulse.sync")
T = TypeVar("T")
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
BAR_EVERY_S = 1.0


def decode(record: Record) -> Delivered | None:
    """The command in ``record``; None for a tombstone (nothing to apply)."""
    if record.value is None:
        return None
    try:
        command = SuppressionCommand.model_validate_json(record.value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        raise BadCommand(
            f"{record.topic}[{record.partition}]@{record.offset} is not a suppression command "
            f"this subscriber reads ({where}: {first['msg']}); it stops here rather than skip it"
        ) from None
    return Delivered(record.partition, record.offset, command)


class Database:
    """The store on a thread of its own: blocking calls stay off the event loop, and one
    connection is used by one thread at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-db")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the database thread; a driver error becomes StoreUnavailable
        (its text names no password: the DSN is only ever shown redacted)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except self.store.driver_errors as exc:
            raise StoreUnavailable(f"{self.store.dsn}: {type(exc).__name__}: {exc}") from None

    async def apply(self, records: Iterable[Record], tables: Tables) -> Plan:
        batch = [d for d in map(decode, records) if d is not None]
        return await self.call(self.store.apply, batch, datetime.now(UTC), tables)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class Progress:
    """Totals since start, a throttled log line with the lag, rate and time left, and on
    a terminal a progress bar through the first catch-up."""

    interval_s: float
    label: str = "sync"
    applied: int = 0
    repeats: int = 0
    lag: int | None = None  # as last measured; None before the first measure
    _logged_at: float = field(default_factory=time.monotonic)
    _logged_totals: tuple[int, int] = (0, 0)
    _measured_at: float = float("-inf")
    _bar: Reporter | None = None
    _bar_stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def add(self, step: Plan) -> None:
        self.applied += len(step.fresh)
        self.repeats += step.repeats

    def open_bar(self, out: TextIO) -> None:
        """Show the catch-up on ``out`` (a bar on a terminal) until the lag is zero; the
        JSON log stays on stdout, so a terminal's bar goes to stderr."""
        self._bar = self._bar_stack.enter_context(
            progress(f"{self.label} catch-up", None, unit="commands", out=out)
        )

    def close_bar(self) -> None:
        self._bar = None
        self._bar_stack.close()

    async def report(self, consumer: AIOKafkaConsumer, idle: bool, final: bool = False) -> None:
        """Log totals and lag every interval while anything moves, on catching up (the
        first empty poll with no lag left) and at the end; move the bar every second."""
        now = time.monotonic()
        due = now - self._logged_at >= self.interval_s
        bar_due = self._bar is not None and now - self._measured_at >= BAR_EVERY_S
        if not (final or due or bar_due or (idle and self.lag != 0)):
            return
        lag = await consumer_lag(consumer)
        if lag is None:  # no partitions assigned (yet): nothing to measure
            return
        self._measured_at = now
        handled = self.applied + self.repeats
        if self._bar is not None:
            self._bar.update(handled, handled + lag)
            if lag == 0:
                self.close_bar()
        caught_up = lag == 0 and self.lag != 0
        moved = (self.applied, self.repeats) != self._logged_totals
        if final or caught_up or (due and (moved or lag > 0)):
            event = "stopped" if final else "caught up" if caught_up else "progress"
            seconds = now - self._logged_at
            per_s = (handled - sum(self._logged_totals)) / seconds if seconds > 0 else 0.0
            eta_s = round(lag / per_s) if per_s > 0 and lag > 0 else None
            log.info(
                f"{self.label} {event}",
                applied=self.applied,
                repeats=self.repeats,
                lag=lag,
                per_s=round(per_s, 1),
                eta_s=eta_s,
            )
            self._logged_at, self._logged_totals = now, (self.applied, self.repeats)
        self.lag = lag


async def consumer_lag(consumer: AIOKafkaConsumer) -> int | None:
    """Records between the consumer's positions and the ends of its assigned partitions."""
    tps = sorted(consumer.assignment())
    if not tps:
        return None
    ends = await consumer.end_offsets(tps)
    positions = {tp: await consumer.position(tp) for tp in tps}
    return sum(max(int(ends[tp]) - int(positions[tp]), 0) for tp in tps)


def next_offsets(batch: Mapping[TopicPartition, Sequence[Record]]) -> dict[TopicPartition, int]:
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


async def wait_for_topic(consumer: AIOKafkaConsumer, topic: str, stop: asyncio.Event) -> bool:
    """Wait until ``topic`` exists (never auto-create it: it must be compacted); False if
    stopped first."""
    while not stop.is_set():
        # All topics' metadata: asking for a missing topic by name can auto-create it.
        metadata = await consumer._client.fetch_all_metadata()
        if metadata.partitions_for_topic(topic):
            return True
        log.warning("waiting for the topic", topic=topic)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):  # not wait_for: see ingest/publisher.py
                await stop.wait()
    return False


async def run(settings: SyncSettings, store: Store, stop: asyncio.Event) -> None:
    """Apply the topic to the table until ``stop`` is set (each batch finishes first)."""
    tables = Tables(settings.table)
    db = Database(store)
    await db.call(store.prepare, tables)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        client_id="mailpulse-sync",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_records,
    )
    await consumer.start()
    log.info(
        "sync started",
        topic=settings.topic_name,
        group=settings.group_id,
        dsn=store.dsn,
        table=tables.state,
    )
    progress = Progress(settings.progress_interval_s)
    if sys.stderr.isatty():
        progress.open_bar(sys.stderr)
    try:
        if not await wait_for_topic(consumer, settings.topic_name, stop):
            return
        consumer.subscribe([settings.topic_name])
        while not stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=settings.poll_timeout_ms, max_records=settings.batch_max_records
            )
            if batch:
                progress.add(await db.apply((r for rs in batch.values() for r in rs), tables))
                try:
                    await consumer.commit(next_offsets(batch))
                except CommitFailedError as exc:
                    # A rebalance took the partitions: their new owner repeats the batch.
                    log.warning("offsets not committed; the batch will repeat", error=str(exc))
            await progress.report(consumer, idle=not batch)
        await progress.report(consumer, idle=True, final=True)
    finally:
        progress.close_bar()
        await consumer.stop()
        db.close()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the loop finishes its batch, commits, returns."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
