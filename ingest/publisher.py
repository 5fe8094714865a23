"""The durable append to `webhooks.raw`: acks=all, idempotent producer, bounded in flight.

The one promise ingest makes rests here: ``append`` returns only after every in-sync
replica has the record. It never waits longer than ``append_timeout_s`` and never lets
more than ``max_in_flight`` records wait for the broker at once (memory stays bounded
even while the broker is down); both cases raise a retriable ``AppendError`` that the
handler turns into 503 + Retry-After.

An idempotent producer whose sequence the brokers no longer accept
(``OutOfOrderSequenceNumber``, seen after every broker of a cluster was stopped and
started) never sends again: aiokafka fails each batch with it and never resets its
producer id or sequence, where Kafka's Java client would take a new producer id. Nor does
one whose sender task died. So the publisher replaces it: the appends under way fail
(503, the sender retries), and a new producer, with a new producer id, takes over once
connected.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)

from ingest.errors import AppendError, OverloadedError
from ingest.settings import KafkaSettings
from schemas.raw import RawWebhook
from schemas.topics import RAW_CONFIG, TopicSpec, ensure_topics

log = structlog.get_logger("ingest.publisher")

# After these the producer's id or sequence is no longer the broker's: only a new one sends.
PRODUCER_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)
STOP_TIMEOUT_S = 5.0  # for a replaced producer to send what it holds, then to close


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
        self._retiring: asyncio.Task[None] | None = None  # a replaced producer's close

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def ready(self) -> bool:
        """Connected, and the broker answered a metadata request within the last seconds."""
        return self._producer is not None and self._reachable

    async def _watch_broker(self, producer: AIOKafkaProducer) -> None:
        while True:
            try:
                # Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation that
                # comes as the broker's answer does, and this loop (so the stop awaiting
                # it) would then never end.
                async with asyncio.timeout(2.0):
                    await producer.client.fetch_all_metadata()
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
                self._replace_if_lost(producer, exc)
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
            self._replace_if_lost(producer, exc)
            raise AppendError(f"broker did not acknowledge in time: {type(exc).__name__}") from exc
        except asyncio.CancelledError:
            if not future.cancelled():
                raise  # this request was cancelled, not the record
            raise AppendError("broker did not acknowledge: the producer was replaced") from None
        return metadata.partition, metadata.offset

    def _replace_if_lost(self, producer: AIOKafkaProducer, exc: BaseException) -> None:
        """Start replacing ``producer`` if ``exc`` means it will never send again (once,
        whichever append sees it first)."""
        task = getattr(getattr(producer, "_sender", None), "sender_task", None)
        dead = task is not None and task.done()  # every later send fails with its error
        if not (dead or isinstance(exc, PRODUCER_LOST)) or self._producer is not producer:
            return
        log.warning("producer_replaced", error=type(exc).__name__, sender_dead=dead)
        self._producer = None  # appends answer 503 until the new one is connected
        self._reachable = False
        watch, self._watch_task = self._watch_task, None
        if watch is not None:
            watch.cancel()
        self._retiring = asyncio.create_task(self._retire(producer))
        self._connect_task = asyncio.create_task(self._reconnect(self._retiring))

    async def _reconnect(self, retiring: asyncio.Task[None]) -> None:
        await asyncio.shield(retiring)  # a stop() meanwhile still lets it finish
        await self._connect_forever()

    async def _retire(self, old: AIOKafkaProducer) -> None:
        """Close ``old``. What it still holds is failed (503s) rather than sent later,
        behind the new producer's records, or retried for ever: aiokafka never expires an
        idempotent batch."""
        stopping = asyncio.ensure_future(old.stop())
        done, _ = await asyncio.wait([stopping], timeout=STOP_TIMEOUT_S)
        if not done:
            old._message_accumulator.fail_all(ProducerClosed())  # lets its close finish
            done, _ = await asyncio.wait([stopping], timeout=STOP_TIMEOUT_S)
        if done:
            with contextlib.suppress(KafkaError):
                stopping.result()
            return
        log.error("producer_not_closed", after_s=2 * STOP_TIMEOUT_S)
        stopping.cancel()
        for future in list(self._pending):  # the old producer's: no other one sends yet
            future.cancel()  # each holds an in-flight slot until settled

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
                # ``wait``, not ``await task`` in a suppress(CancelledError): that would
                # also swallow a cancellation of this stop, and wait for ever.
                await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
                if not task.done():
                    log.error("publisher_task_not_stopped", task=task.get_name())
        if self._retiring is not None:
            await self._retiring  # bounded: 2 x STOP_TIMEOUT_S
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError):
                await producer.flush()
            await producer.stop()
