"""Attempts deliveries: per endpoint a queue and a task, retries kept in the table.

A delivery's state lives in the ``webhook_deliveries`` table, never in a consumer
offset: the agent acks an event once its deliveries are durable, and the attempts (for
hours, if an endpoint is down) are the scheduler's. Each worker schedules the pending
deliveries of the table partitions it owns: those the agent creates (``on_persisted``,
once durable) and, when it takes a partition over or restarts, those it finds under the
partition's pending entries. After ``kill -9`` nothing is lost: every pending delivery is
in the changelog, and an attempt that was under way is made again (same delivery id).

Isolation: one task per endpoint, at most ``endpoint_concurrency`` attempts in flight
each, bounded by timeouts; one endpoint waiting on its timeouts holds only its own slots.
Writes go through the agent's ``OrderedWriter`` (``write_detached``), so each
partition's store stays a prefix of its changelog; a partition being revoked first
waits for the writes made for it, and no write is made for a partition this worker no
longer owns (an attempt finishing then is made again by the new owner).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
import structlog

from processors.metrics import ProcessorMetrics
from processors.runtime.routing import WorkerUnavailable, check_ready
from processors.runtime.scan import (
    PartitionsNotOpen,
    active_partition_dbs,
    ordered_range,
    prefix_end,
)
from processors.runtime.store import TableStore, Write
from processors.runtime.writer import OrderedWriter
from processors.settings import WebhookSettings
from processors.webhooks import deliveries as d
from processors.webhooks.keys import (
    PENDING,
    RECORD,
    TIME,
    endpoint_prefix,
    parse_pending_key,
    parse_time_key,
    record_key,
    time_from,
)
from processors.webhooks.queues import EndpointQueue, Pending
from processors.webhooks.retry import RetrySchedule, verdict
from processors.webhooks.sender import Sender
from processors.webhooks.view import SubscriptionView
from schemas.webhooks import DeliveryRecord

log = structlog.get_logger("processors.webhooks")

Deactivate = Callable[[int], Coroutine[Any, Any, None]]


def _now() -> datetime:
    return datetime.now(UTC)


def _pending(record: DeliveryRecord) -> Pending:
    due = record.next_attempt_at or record.window_start
    return Pending(d.key_of(record), record.partition, record.address, record.seq, due.timestamp())


class DeliveryScheduler:
    def __init__(
        self,
        app: faust.App,
        table: Any,
        settings: WebhookSettings,
        view: SubscriptionView,
        sender: Sender,
        deactivate: Deactivate,
        metrics: ProcessorMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self._app = app
        self._table = table
        self._settings = settings
        self._view = view
        self._sender = sender
        self._deactivate = deactivate
        self._metrics = metrics
        self._rng = rng or random.Random()
        self.schedule = RetrySchedule(
            settings.retry_base_s,
            settings.retry_cap_s,
            settings.max_age_s,
            settings.retry_after_max_s,
        )
        self._store: TableStore | None = None
        self._writer: OrderedWriter | None = None
        self._queues: dict[int, EndpointQueue] = {}
        self._wakes: dict[int, asyncio.Event] = {}
        self._runners: dict[int, asyncio.Task[None]] = {}
        self._loaded: set[int] = set()  # partitions whose deliveries are scheduled here
        self._writes: dict[int, set[asyncio.Future[None]]] = {}
        self._attempts: set[asyncio.Task[None]] = set()
        # Records being attempted: a partition loaded again meanwhile (a rebalance that
        # gave it back) must not start a second attempt of the same delivery.
        self._flying: set[bytes] = set()
        self._last_prune = time.monotonic()
        self.attempted = 0  # attempts made (bench, tests)

    # -- wiring ---------------------------------------------------------------

    def attach(self, store: TableStore, writer: OrderedWriter) -> None:
        """The agent's store and writer (every write of the table goes through them)."""
        self._drop(set(self._loaded))  # a new agent instance: partitions are loaded again
        self._store, self._writer = store, writer

    def detach(self, writer: OrderedWriter) -> None:
        if self._writer is writer:
            self._store = self._writer = None
            self._drop(set(self._loaded))

    def on_persisted(self, partition: int, writes: Sequence[Write]) -> None:
        """The agent's new deliveries, once durable: schedule them."""
        if partition not in self._loaded:
            return  # the partition's load will find them under its pending entries
        for key, value in writes:
            if key.startswith(RECORD) and value is not None:
                # The agent validated this record a moment ago: read the few fields the
                # queue needs without validating the whole payload again.
                fields = orjson.loads(value)
                if fields["status"] == "pending":
                    due = datetime.fromisoformat(
                        fields["next_attempt_at"] or fields["window_start"]
                    )
                    item = Pending(
                        key, partition, fields["address"], fields["seq"], due.timestamp()
                    )
                    self._enqueue(fields["webhook_id"], item)

    async def on_revoked(self, partitions: Iterable[int]) -> None:
        """Before Faust hands ``partitions`` to another worker: no more writes for them,
        and the writes made for them are durable."""
        revoked = set(partitions) & self._loaded
        waiting = [f for p in revoked for f in self._writes.get(p, ())]
        self._drop(revoked)
        if waiting:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)

    def _drop(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._loaded.discard(partition)
            self._writes.pop(partition, None)
            for queue in self._queues.values():
                queue.drop_partition(partition)

    # -- the tick -------------------------------------------------------------

    async def run(self) -> None:
        """Every ``tick_s``: load newly owned partitions, end the deliveries of inactive
        endpoints, prune old records."""
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("webhook_scheduler_tick_failed")
                await asyncio.sleep(self._settings.tick_s)
        finally:
            for task in [*self._runners.values(), *self._attempts]:
                task.cancel()
            await self._sender.close()

    async def tick(self) -> None:
        if self._store is None or self._writer is None:
            return
        try:
            check_ready(self._app)
            dbs = active_partition_dbs(self._table)
        except (WorkerUnavailable, PartitionsNotOpen):
            return
        self._drop(self._loaded - dbs.keys())
        if not self._view.ready:
            # Nothing is attempted before every endpoint is known: an endpoint not read
            # yet would look deleted.
            with contextlib.suppress(TimeoutError):
                await self._view.sync(timeout_s=self._settings.tick_s * 5)
            return
        for partition in sorted(dbs.keys() - self._loaded):
            self._load(partition, dbs[partition])
        for webhook_id, queue in list(self._queues.items()):
            endpoint = self._view.registry.get(webhook_id)
            if endpoint is None or not endpoint.record.active:
                reason = "endpoint_deleted" if endpoint is None else "endpoint_inactive"
                await self._end_all(queue, reason)
        if time.monotonic() - self._last_prune >= self._settings.prune_every_s:
            self._last_prune = time.monotonic()
            for partition, db in dbs.items():
                await self._prune(partition, db)

    def _load(self, partition: int, db: Any) -> None:
        assert self._store is not None
        self._loaded.add(partition)
        found = 0
        for key, _ in ordered_range(db, PENDING, prefix_end(PENDING)):
            webhook_id, identifier = parse_pending_key(key)
            raw = self._store.get(partition, record_key(webhook_id, identifier))
            if raw is None:
                continue
            record = DeliveryRecord.model_validate_json(raw)
            if record.status == "pending" and d.key_of(record) not in self._flying:
                found += self._enqueue(webhook_id, _pending(record))
        log.info("webhook_partition_loaded", partition=partition, pending=found)

    def _enqueue(self, webhook_id: int, item: Pending) -> bool:
        queue = self._queues.get(webhook_id)
        if queue is None:
            queue = self._queues[webhook_id] = EndpointQueue(
                webhook_id, self._settings.endpoint_concurrency
            )
            self._wakes[webhook_id] = asyncio.Event()
        added = queue.add(item)
        if webhook_id not in self._runners or self._runners[webhook_id].done():
            self._runners[webhook_id] = asyncio.create_task(
                self._runner(webhook_id), name=f"webhook:{webhook_id}"
            )
        self._wakes[webhook_id].set()
        return added

    # -- writes ---------------------------------------------------------------

    async def write(self, partition: int, writes: list[Write]) -> bool:
        """Stage ``writes`` (made durable in order by the agent's writer); False when the
        partition is not this worker's any more (nothing is written)."""
        writer = self._writer
        if writer is None or partition not in self._loaded or not writes:
            return False
        future = await writer.write_detached(partition, writes)
        pending = self._writes.setdefault(partition, set())
        pending.add(future)
        future.add_done_callback(pending.discard)
        return True

    def read(self, partition: int, key: bytes) -> DeliveryRecord | None:
        if self._store is None or partition not in self._loaded:
            return None
        raw = self._store.get(partition, key)
        return DeliveryRecord.model_validate_json(raw) if raw is not None else None

    async def _end_all(self, queue: EndpointQueue, reason: str) -> None:
        now = _now()
        for item in queue.drain():
            record = self.read(item.partition, item.key)
            if record is not None and record.status == "pending":
                await self.write(item.partition, d.update_writes(d.fail(record, now, reason)))

    # -- attempts -------------------------------------------------------------

    async def _runner(self, webhook_id: int) -> None:
        queue, wake = self._queues[webhook_id], self._wakes[webhook_id]
        while True:
            wake.clear()
            for item in queue.take_due(time.time()):
                task = asyncio.create_task(self._attempt(webhook_id, queue, item))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
            due = queue.next_due() if queue.in_flight < queue.concurrency else None
            timeout = None if due is None else max(0.0, due - time.time())
            # ``asyncio.timeout``: Python 3.11's ``wait_for`` swallows a cancellation
            # that comes as ``wake`` is set, and this loop would then never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()

    async def _attempt(self, webhook_id: int, queue: EndpointQueue, item: Pending) -> None:
        ended, due = False, time.time() + self._settings.retry_base_s
        self._flying.add(item.key)
        try:
            record = self.read(item.partition, item.key)
            if record is None or record.status != "pending":
                ended = True
                return
            record = await self._attempted(webhook_id, record)
            ended = record.status != "pending"
            if record.next_attempt_at is not None:
                due = record.next_attempt_at.timestamp()
            written = await self.write(item.partition, d.update_writes(record))
            if written and ended:
                self._metrics.webhook_ended.labels(record.status).inc()
            if written and not ended and item.key not in queue:
                # Dropped while in flight, its partition loaded again since: still ours.
                self._enqueue(webhook_id, _pending(record))
        except Exception:
            log.exception("webhook_attempt_failed", webhook_id=webhook_id)
        finally:
            self._flying.discard(item.key)
            queue.finished(item, ended, due)
            self._wakes[webhook_id].set()

    async def _attempted(self, webhook_id: int, record: DeliveryRecord) -> DeliveryRecord:
        """The record after this attempt (or after finding it cannot be made)."""
        endpoint = self._view.registry.get(webhook_id)
        now = _now()
        if endpoint is None:
            return d.fail(record, now, "endpoint_deleted")
        if not endpoint.record.active:
            return d.fail(record, now, "endpoint_inactive")
        if d.expired(record, now, self.schedule.max_age_s):
            return d.fail(record, now, "max_age reached before the attempt")
        secret = endpoint.secret.get_secret_value()
        result = await self._sender.post(endpoint.record.url, record, secret)
        self.attempted += 1
        outcome = d.after_attempt(
            record, result, _now(), self.schedule, self._rng, self._settings.attempts_kept
        )
        self._metrics.webhook_attempts.labels(verdict(result)).inc()
        level = log.debug if outcome.record.status == "delivered" else log.info
        level(
            "webhook_attempt",
            webhook_id=webhook_id,
            delivery_id=record.delivery_id,
            attempt=outcome.record.attempts,
            status_code=result.status_code,
            error=result.error,
            outcome=outcome.record.status,
        )
        if outcome.deactivate:
            task = asyncio.create_task(self._deactivate(webhook_id))
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)
        return outcome.record

    # -- re-sends, replays ------------------------------------------------------

    async def requeue(self, partition: int, record: DeliveryRecord) -> DeliveryRecord | None:
        """A new series of attempts for an ended delivery; durable when it returns."""
        renewed = d.resend(record, _now())
        writer = self._writer
        if writer is None or partition not in self._loaded:
            return None
        future = await writer.write_detached(partition, d.update_writes(renewed))
        await future
        self._enqueue(renewed.webhook_id, _pending(renewed))
        return renewed

    def partitions(self) -> set[int]:
        return set(self._loaded)

    def records(
        self, partition: int, webhook_id: int, since_ms: int, after: bytes | None = None
    ) -> Iterable[DeliveryRecord]:
        """The endpoint's deliveries in ``partition`` from ``since_ms`` on, in time order."""
        if self._store is None or partition not in self._loaded:
            return
        db = active_partition_dbs(self._table)[partition]
        start = time_from(webhook_id, since_ms)
        if after is not None and after >= start:
            start = after + b"\x00"
        for key, _ in ordered_range(db, start, prefix_end(endpoint_prefix(TIME, webhook_id))):
            _, _, identifier = parse_time_key(key)
            record = self.read(partition, record_key(webhook_id, identifier))
            if record is not None:
                yield record

    async def _prune(self, partition: int, db: Any) -> None:
        """Delete ended deliveries older than the retention, and every delivery of a
        deleted endpoint."""
        cutoff_ms = int((time.time() - self._settings.log_retention_s) * 1000)
        start = TIME
        batch: list[tuple[int, int, str]] = []
        while True:
            entry = next(iter(ordered_range(db, start, prefix_end(TIME))), None)
            if entry is None:
                break
            webhook_id, _, _ = parse_time_key(entry[0])
            deleted = self._view.registry.get(webhook_id) is None
            stop = prefix_end(endpoint_prefix(TIME, webhook_id))
            upto = stop if deleted else time_from(webhook_id, cutoff_ms)
            for key, _ in ordered_range(db, endpoint_prefix(TIME, webhook_id), upto):
                _, ms, identifier = parse_time_key(key)
                record = self.read(partition, record_key(webhook_id, identifier))
                if record is None or record.status != "pending" or deleted:
                    batch.append((webhook_id, ms, identifier))
                if len(batch) >= 500:
                    await self.write(partition, d.deletion_writes(batch))
                    batch = []
            start = stop
        if batch:
            await self.write(partition, d.deletion_writes(batch))
