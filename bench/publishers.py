"""Publishers for the ladder's middle rungs (both satisfy ``ingest.publisher.Publisher``)."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.settings import KafkaSettings
from schemas.raw import RawWebhook
from schemas.topics import RAW_CONFIG, TopicSpec, ensure_topics


class AckingPublisher:
    """Acknowledges every append at once: the cost of ingest without any broker."""

    def __init__(self) -> None:
        self.appended = 0

    async def append(self, record: RawWebhook, key: bytes) -> tuple[int, int]:
        self.appended += 1
        return 0, self.appended - 1

    def ready(self) -> bool:
        return True


class NoWaitKafkaPublisher:
    """Hands the record to the same acks=all producer as ingest but answers before the ack.

    Deliberately not durable: it isolates what *waiting* for acks=all costs from what
    producing costs. Failed sends are only counted.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self.topic = settings.topic(settings.raw_topic)
        self._producer: AIOKafkaProducer | None = None
        self.failed = 0

    def ready(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        s = self._settings
        spec = TopicSpec(self.topic, s.raw_partitions, s.replication_factor, RAW_CONFIG)
        await ensure_topics(s.bootstrap_servers, [spec])
        # The same producer settings as ingest.publisher.KafkaPublisher.
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=s.linger_ms,
            request_timeout_ms=max(1000, int(s.append_timeout_s * 1000)),
            max_request_size=4 * 1024 * 1024,
            client_id="mailpulse-bench-nowait",
        )
        await producer.start()
        self._producer = producer

    async def append(self, record: RawWebhook, key: bytes) -> tuple[int, int]:
        assert self._producer is not None, "start() first"
        future = await self._producer.send(
            self.topic, value=record.body, key=key, headers=record.kafka_headers()
        )
        future.add_done_callback(self._count_failure)
        return -1, -1

    def _count_failure(self, future: asyncio.Future[object]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.failed += 1

    async def stop(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._producer.flush()
            await self._producer.stop()
            self._producer = None
