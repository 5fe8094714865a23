"""The durable append to `webhooks.raw`: acks=all, idempotent producer, bounded in flight.

The one promise ingest makes rests here: ``append`` returns only after every in-sync
replica has the record. It never waits longer than ``append_timeout_s`` and never lets
more than ``max_in_flight`` records wait for the broker at once (memory stays bounded
even while the broker is down); both cases raise a retriable ``AppendError`` that the
handler turns into 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.errors import AppendError, OverloadedError
from ingest.settings import KafkaSettings
from schemas.raw import RawWebhook
from schemas.topics import RAW_CONFIG, TopicSpec, ensure_topics

log = structlog.get_logger("ingest.publisher")


class Publisher(Protocol):
    """What the HTTP handler needs from the append side (a fake in unit tests)."""

    async def append(self, record: RawWebhook, key: bytes) -> tuple[int, int]: ...

    def ready(self) -> bool: ...


class KafkaPublisher:
    """Appends raw webhooks with an idempotent acks=all producer."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._topic = settings.topic(settings.raw_topic)
        self._producer: AIOKafkaProducer | None = None
        self._in_flight = 0
        self._connect_task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[object]] = set()
        self._reachable = False
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def ready(self) -> bool:
        """Connected, and the broker answered a metadata request within the last seconds."""
        return self._producer is not None and self._reachable

    async def _watch_broker(self, producer: AIOKafkaProducer) -> None:
        while True:
            try:
                await asyncio.wait_for(producer.client.fetch_all_metadata(), 2.0)
                self._reachable = True
            except (TimeoutError, KafkaError, OSError):
                self._reachable = False
            await asyncio.sleep(2.0)

    async def start(self) -> None:
        """Connect in the background, so ingest serves /healthz (and 503s) without a broker."""
        self._connect_task = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=self._settings.linger_ms,
                request_timeout_ms=max(1000, int(self._settings.append_timeout_s * 1000)),
                max_request_size=4 * 1024 * 1024,
                client_id="mailpulse-ingest",
            )
            try:
                await producer.start()
                await ensure_topics(self._settings.bootstrap_servers, [self.topic_spec()])
            except asyncio.CancelledError:
                await producer.stop()
                raise
            except (KafkaError, OSError) as exc:
                await producer.stop()
                log.warning("broker_unreachable", error=type(exc).__name__, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            self._reachable = True
            self._watch_task = asyncio.create_task(self._watch_broker(producer))
            log.info("broker_connected", topic=self._topic)
            return

    def topic_spec(self) -> TopicSpec:
        s = self._settings
        return TopicSpec(
            self._topic, s.raw_partitions, s.replication_factor, RAW_CONFIG, s.min_insync_replicas
        )

    async def append(self, record: RawWebhook, key: bytes) -> tuple[int, int]:
        """Append and wait for acks=all; returns (partition, offset) of the durable record."""
        producer = self._producer
        if producer is None:
            raise AppendError("not connected to the broker yet")
        if self._in_flight >= self._settings.max_in_flight:
            raise OverloadedError("too many appends waiting for the broker")
        # The slot is held until the broker answers (or the producer gives the record up),
        # not until this request stops waiting: that is what bounds memory during an outage.
        self._in_flight += 1
        try:
            future = await asyncio.wait_for(
                producer.send(
                    self._topic, value=record.body, key=key, headers=record.kafka_headers()
                ),
                self._settings.append_timeout_s,
            )
        except BaseException as exc:
            self._in_flight -= 1
            if isinstance(exc, (TimeoutError, KafkaError)):
                raise AppendError(
                    f"broker did not accept the record: {type(exc).__name__}"
                ) from exc
            raise
        self._pending.add(future)
        future.add_done_callback(self._release)
        try:
            metadata = await asyncio.wait_for(
                asyncio.shield(future), self._settings.append_timeout_s
            )
        except (TimeoutError, KafkaError) as exc:
            raise AppendError(f"broker did not acknowledge in time: {type(exc).__name__}") from exc
        return metadata.partition, metadata.offset

    def _release(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        self._in_flight -= 1
        if not future.cancelled():
            future.exception()  # mark retrieved: a timed-out request already answered 503

    async def stop(self) -> None:
        """Flush what is in flight, then close. Called after the HTTP server stopped."""
        for task in (self._connect_task, self._watch_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.flush()
            await self._producer.stop()
            self._producer = None
