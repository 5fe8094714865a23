"""``KafkaPublisher`` replaces a producer that will never send again (a broken idempotent
sequence after every broker restarted): those appends fail with a retriable error, and
the next ones go through a new producer. Other errors leave the producer in place."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaError, KafkaTimeoutError, OutOfOrderSequenceNumber

from ingest import publisher as publisher_module
from ingest.errors import AppendError
from ingest.publisher import KafkaPublisher
from ingest.settings import KafkaSettings
from schemas.raw import RawWebhook


class Metadata:
    def __init__(self, offset: int) -> None:
        self.partition = 0
        self.offset = offset


class Client:
    async def fetch_all_metadata(self) -> None:
        return None


class GatedClient:
    """A broker whose metadata answer comes when the test says."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.answer: asyncio.Future[None] | None = None

    async def fetch_all_metadata(self) -> None:
        self.answer = asyncio.get_running_loop().create_future()
        self.asked.set()
        await self.answer


class Accumulator:
    """aiokafka's batches of one producer: the ones no broker answers, until failed."""

    def __init__(self) -> None:
        self.unanswered: list[asyncio.Future[Metadata]] = []
        self.failed = asyncio.Event()

    def fail_all(self, exception: Exception) -> None:
        for future in self.unanswered:
            future.set_exception(exception)
        self.failed.set()


class FakeProducer:
    """aiokafka's producer as the publisher uses it. The first one answers each send with
    ``failure`` (None: it sends), except a key ``b"unanswered"``, which no broker answers;
    with ``sender_dead`` its sender task has ended; with ``stop_hangs`` it closes only
    once its batches are failed. The later ones send."""

    made: list[FakeProducer] = []
    client: Any
    client_class: type[Any] = Client
    failure: Exception | None = None
    sender_dead = False
    stop_hangs = False

    def __init__(self, **_: Any) -> None:
        first = not FakeProducer.made
        self.error = FakeProducer.failure if first else None
        self.hangs = FakeProducer.stop_hangs and first
        self.client = FakeProducer.client_class()
        self.sent = 0
        self.stopped = False
        self._message_accumulator = Accumulator()
        if FakeProducer.sender_dead and first:
            ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            ended.set_result(None)
            self._sender = SimpleNamespace(sender_task=ended)
        FakeProducer.made.append(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self.hangs:
            await self._message_accumulator.failed.wait()
        self.stopped = True

    async def flush(self) -> None:
        return None

    async def send(self, topic: str, *, key: bytes, **_: Any) -> asyncio.Future[Metadata]:
        future: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        if key == b"unanswered":
            self._message_accumulator.unanswered.append(future)
        elif self.error is not None:
            future.set_exception(self.error)
        else:
            future.set_result(Metadata(self.sent))
            self.sent += 1
        return future


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    async def no_topic_check(*_: Any) -> None:
        return None

    FakeProducer.made = []
    FakeProducer.sender_dead = FakeProducer.stop_hangs = False
    FakeProducer.client_class = Client
    monkeypatch.setattr(publisher_module, "STOP_TIMEOUT_S", 0.1)
    monkeypatch.setattr(publisher_module, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(publisher_module, "ensure_topics", no_topic_check)
    return FakeProducer.made


def record() -> RawWebhook:
    return RawWebhook(
        body=b"{}",
        source="nexuspromail",
        provider="nexuspromail",
        received_at=datetime(2026, 12, 1, tzinfo=UTC),
        verification="hmac",
    )


async def connected(publisher: KafkaPublisher) -> None:
    async with asyncio.timeout(5):
        while not publisher.ready():
            await asyncio.sleep(0.01)


async def test_a_producer_with_a_broken_sequence_is_replaced(
    producers: list[FakeProducer],
) -> None:
    FakeProducer.failure = OutOfOrderSequenceNumber()
    publisher = KafkaPublisher(KafkaSettings(append_timeout_s=1.0))
    await publisher.start()
    await connected(publisher)
    with pytest.raises(AppendError, match="OutOfOrderSequenceNumber"):
        await publisher.append(record(), b"k")
    await connected(publisher)
    assert len(producers) == 2
    assert producers[0].stopped
    assert await publisher.append(record(), b"k") == (0, 0)
    assert producers[1].sent == 1
    assert publisher.in_flight == 0
    await publisher.stop()


async def test_a_timeout_leaves_the_producer_in_place(producers: list[FakeProducer]) -> None:
    FakeProducer.failure = KafkaTimeoutError()
    publisher = KafkaPublisher(KafkaSettings(append_timeout_s=1.0))
    await publisher.start()
    await connected(publisher)
    for _ in range(3):
        with pytest.raises(AppendError, match="KafkaTimeoutError"):
            await publisher.append(record(), b"k")
    assert publisher.ready()
    assert len(producers) == 1
    assert not producers[0].stopped
    await publisher.stop()


async def test_a_replaced_producer_that_cannot_close_has_its_records_failed(
    producers: list[FakeProducer],
) -> None:
    # A record no broker answers waits in the old producer when it is replaced: it gets a
    # 503 (failed, not sent behind the new producer's records), and its slot comes back.
    FakeProducer.failure = OutOfOrderSequenceNumber()
    FakeProducer.stop_hangs = True
    publisher = KafkaPublisher(KafkaSettings(append_timeout_s=3.0))
    await publisher.start()
    await connected(publisher)
    waiting = asyncio.ensure_future(publisher.append(record(), b"unanswered"))
    await asyncio.sleep(0.01)
    with pytest.raises(AppendError, match="OutOfOrderSequenceNumber"):
        await publisher.append(record(), b"k")
    with pytest.raises(AppendError, match="ProducerClosed"):
        await waiting
    await connected(publisher)
    assert producers[0].stopped
    assert await publisher.append(record(), b"k") == (0, 0)
    assert publisher.in_flight == 0
    await publisher.stop()


async def test_a_producer_whose_sender_died_is_replaced(producers: list[FakeProducer]) -> None:
    FakeProducer.failure = KafkaError("Unexpected error during batch delivery")
    FakeProducer.sender_dead = True
    publisher = KafkaPublisher(KafkaSettings(append_timeout_s=1.0))
    await publisher.start()
    await connected(publisher)
    with pytest.raises(AppendError):
        await publisher.append(record(), b"k")
    await connected(publisher)
    assert len(producers) == 2
    assert await publisher.append(record(), b"k") == (0, 0)
    await publisher.stop()


@pytest.mark.parametrize("steps", range(6))
async def test_stop_ends_when_the_watch_is_stopped_as_its_broker_answers(
    producers: list[FakeProducer], steps: int
) -> None:
    # The broker's answer to the watch's metadata request comes, and ``steps`` rounds of
    # the event loop later, the stop cancels the watch: at one of them the answer is in
    # and the watch has not resumed yet. A cancellation that comes then is one that
    # Python 3.11's ``asyncio.wait_for`` swallows, and the watch would go on for ever.
    FakeProducer.client_class = GatedClient
    publisher = KafkaPublisher(KafkaSettings(append_timeout_s=1.0))
    await publisher.start()
    await connected(publisher)
    client = producers[0].client
    async with asyncio.timeout(5):
        await client.asked.wait()
    assert client.answer is not None
    watch = publisher._watch_task
    client.answer.set_result(None)
    for _ in range(steps):
        await asyncio.sleep(0)
    timer = asyncio.timeout(5)
    async with timer:
        await publisher.stop()
    # Checked after the block too: a stop that swallowed the timer's cancellation would
    # end the block as if in time.
    assert not timer.expired(), "stop() waited until it was cancelled"
    assert watch is not None
    assert watch.done(), "the watch goes on"
    assert producers[0].stopped
