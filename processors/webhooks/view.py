"""The endpoints on every worker: ``webhooks.subscriptions`` read from its start, then
followed, into a ``Registry``; and the appends the manage API and the scheduler make.

Why not a Faust ``GlobalTable``: its own docstring warns that with several workers it
can loop in recovery for ever. What it would do here is small and plain: every worker
reads the whole compacted topic (one partition, one record per endpoint) at start and
follows it, so each holds every endpoint, and a restart, a replay or a rebuild finds
them on the topic, which is their source of truth.

``sync`` is the delivery agent's guarantee that it sees every endpoint registered before
an event was received: it asks the broker for the topic's end offset and waits until the
view has applied everything below it. Rounds are shared by every waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from processors.runtime.produce import DirectTopic
from processors.webhooks.registry import Endpoint, Registry, topic_key
from schemas.webhooks import SubscriptionRecord

log = structlog.get_logger("processors.webhooks")

Listener = Callable[[int, Endpoint | None], None]  # webhook id, the endpoint now (None: deleted)


class SubscriptionView:
    """Every endpoint, kept current from the topic by one consumer per worker."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.registry = Registry()
        self._bootstrap = bootstrap_servers
        self._tp = TopicPartition(topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._applied = 0  # offset of the next record to apply
        self._progress = asyncio.Condition()
        self._sync_round: asyncio.Task[float] | None = None
        self._round_started = 0.0
        self.synced_at = 0.0  # wall time: every record appended before it is applied
        self._listeners: list[Listener] = []
        self._started = asyncio.Event()

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` after each record is applied."""
        self._listeners.append(listener)

    async def run(self) -> None:
        """Read the topic from its start and follow it until cancelled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            consumer.assign([self._tp])
            await consumer.seek_to_beginning(self._tp)
            self._consumer = consumer
            self._started.set()
            while True:
                batch = await consumer.getmany(self._tp, timeout_ms=500)
                records = batch.get(self._tp, [])
                for record in records:
                    change = self.registry.apply(record.key, record.value, record.offset)
                    if change is not None:
                        self._notify(*change)
                position = await consumer.position(self._tp)
                async with self._progress:
                    self._applied = position
                    self._progress.notify_all()
        finally:
            self._consumer = None
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _notify(self, webhook_id: int, endpoint: Endpoint | None) -> None:
        for listener in self._listeners:
            try:
                listener(webhook_id, endpoint)
            except Exception:
                log.exception("subscription_listener_failed", webhook_id=webhook_id)

    @property
    def ready(self) -> bool:
        """The view has read the whole topic at least once (``synced_at`` set)."""
        return self.synced_at > 0

    async def wait_applied(self, offset: int, timeout_s: float = 10.0) -> None:
        """Until the record at ``offset`` is applied (read-your-writes for the API)."""
        async with asyncio.timeout(timeout_s), self._progress:
            await self._progress.wait_for(lambda: self._applied > offset)

    async def sync(self, timeout_s: float = 30.0) -> float:
        """Apply everything on the topic now; returns the wall time the round began."""
        if self._sync_round is None or self._sync_round.done():
            self._sync_round = asyncio.create_task(self._sync_once())
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(self._sync_round)

    async def covers(self, at: float) -> None:
        """Return once every endpoint registered before wall time ``at`` is applied. A
        round that began before ``at`` does not count: the next one does."""
        at = min(at, time.time())  # a sender's clock ahead of ours must not spin here
        while self.synced_at < at:
            try:
                await self.sync()
            except TimeoutError:
                # The broker is slow or away: wait for it rather than read a stale view.
                log.warning("subscription_sync_slow", topic=self.topic)

    async def _sync_once(self) -> float:
        started = time.time()
        await self._started.wait()
        consumer = self._consumer
        assert consumer is not None
        end = (await consumer.end_offsets([self._tp]))[self._tp]
        async with self._progress:
            await self._progress.wait_for(lambda: self._applied >= end)
        self.synced_at = max(self.synced_at, started)
        return started


class SubscriptionLog:
    """Appends subscription records (acks=all, through the worker's producer)."""

    def __init__(self, topic: DirectTopic, view: SubscriptionView) -> None:
        self._topic = topic
        self._view = view

    async def append(self, uid: str, record: SubscriptionRecord | None) -> int:
        """Append ``record`` (None: a tombstone) and wait until this worker's view has it;
        returns its offset."""
        value = record.to_topic() if record is not None else None
        ack = await self._topic.send(key=topic_key(uid), value=value, partition=0)
        metadata = await ack
        offset: int = metadata.offset
        await self._view.wait_applied(offset)
        return offset
