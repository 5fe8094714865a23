"""Small helpers for real-broker tests: unique topic names, produce/consume with aiokafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from schemas.commands import EVENT_BATCH_VALUE_TYPE, VALUE_TYPE_HEADER

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    timeout: float = 60.0,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until ``ok(result)`` and return that result; fail on timeout, naming
    ``what`` and the last result."""
    deadline = time.monotonic() + timeout
    result = await probe()
    while not ok(result):
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: not met within {timeout:.0f} s; last result: {result!r:.2000}"
            )
        await asyncio.sleep(0.25)
        result = await probe()
    return result


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


async def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes]],
    headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=key, value=value, headers=list(headers))
            for key, value in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 30.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning until ``done(records)``; fail on timeout with
    the number of records read."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    if not done(records):
        raise AssertionError(
            f"{topic}: condition not met within {timeout:.0f} s; {len(records)} records read"
        )
    return records


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` and return once the broker's metadata names a leader for each
    partition: a client started before that sees no such topic and, subscribed to it,
    gets no partition until its next metadata refresh (minutes)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()

    async def described() -> list[Any]:
        answer: list[Any] = await admin.describe_topics([topic])
        return answer

    def led(answer: list[Any]) -> bool:
        found = [t for t in answer if t["topic"] == topic and t["error_code"] == 0]
        leaders = [p["leader"] for t in found for p in t["partitions"]]
        return len(leaders) == partitions and all(leader >= 0 for leader in leaders)

    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
        await eventually(described, led, timeout=30, what=f"a leader for each partition of {topic}")
    finally:
        await admin.close()


async def committed_offsets(bootstrap: str, group: str, topic: str) -> int:
    """The sum of ``group``'s committed offsets on ``topic`` (0 where none)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(m.offset for tp, m in offsets.items() if tp.topic == topic)


async def commit_lag(
    bootstrap: str, group: str, topics: Sequence[str] = ()
) -> dict[str, dict[int, tuple[int, int]]]:
    """Topic -> partition -> (``group``'s committed offset, or -1; the end offset), for
    ``topics`` and each other topic ``group`` has committed offsets on."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        topics = list(dict.fromkeys([*topics, *sorted({tp.topic for tp in committed})]))
        tps = [tp for topic in topics for tp in await _partitions(consumer, topic)]
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
        await admin.close()
    lag: dict[str, dict[int, tuple[int, int]]] = {topic: {} for topic in topics}
    for tp, end in sorted(ends.items()):
        lag[tp.topic][tp.partition] = (committed[tp].offset if tp in committed else -1, end)
    return lag


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # All topics' metadata: naming a missing topic could auto-create it.
    metadata = await consumer._client.fetch_all_metadata()
    return [TopicPartition(topic, p) for p in metadata.partitions_for_topic(topic) or ()]


async def wait_committed(
    bootstrap: str,
    group: str,
    topic: str,
    total: int,
    timeout: float = 60.0,
    check: Callable[[], None] = lambda: None,
) -> int:
    """Wait until ``group`` has committed offsets summing to ``total`` on ``topic``; fail on
    timeout with the sum reached. ``check`` runs before every probe (e.g. to fail at once
    when a worker died)."""

    async def committed() -> int:
        check()
        return await committed_offsets(bootstrap, group, topic)

    return await eventually(
        committed,
        lambda committed: committed >= total,
        timeout=timeout,
        what=f"{group} committing {total} offsets of {topic}",
    )


# The tests read topics with their own plain aiokafka code, deliberately not with
# processors.ops.kafkaio: what the product wrote is checked by a reader it does not share.


async def read_all(
    bootstrap: str, topic: str, timeout: float = 120.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record now in ``topic`` (all partitions, up to their current end offsets);
    fails if they cannot be read within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            return await _read_all(bootstrap, topic)
    except TimeoutError:
        raise AssertionError(f"{topic}: not read to its end offsets in {timeout:.0f} s") from None


async def _read_all(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        tps = await _partitions(consumer, topic)
        if tps:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    records.extend(batch.get(tp, []))
    finally:
        try:
            await consumer.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14 raises this from stop() when nothing was ever assigned; a real
            # cancellation of this task is passed on.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
    return records


def latest_by_key(records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[bytes, bytes]:
    """What a compacted topic or a changelog says now: the last value per key."""
    latest: dict[bytes, bytes] = {}
    for r in records:
        if r.key is not None and r.value is not None:
            latest[r.key] = r.value
        elif r.key is not None:
            latest.pop(r.key, None)
    return latest


def hop_events(records: list[Any]) -> list[dict[str, Any]]:
    """The canonical events in ``email.events`` or ``message.events`` records, in order:
    each batch record's events, and the records of one event (manual actions left out)."""
    events: list[dict[str, Any]] = []
    for record in records:
        kind = dict(record.headers or []).get(VALUE_TYPE_HEADER)
        if kind == EVENT_BATCH_VALUE_TYPE.encode():
            events.extend(orjson.loads(record.value))
        elif kind is None:
            events.append(orjson.loads(record.value))
    return events


async def http_status(session: Any, url: str) -> int | str:
    """``url``'s status, or the connection error's name while nothing answers there."""
    import aiohttp

    try:
        async with session.get(url) as resp:
            status: int = resp.status
            return status
    except (aiohttp.ClientError, OSError) as exc:
        return type(exc).__name__


async def wait_status(session: Any, url: str, status: int | set[int], timeout: float = 60.0) -> int:
    """Wait until ``url`` answers ``status`` (one of them, for a set); fail on timeout with
    the last answer."""
    wanted = status if isinstance(status, set) else {status}
    answer = await eventually(
        lambda: http_status(session, url),
        lambda got: got in wanted,
        timeout=timeout,
        what=f"{url} answering {sorted(wanted)}",
    )
    assert isinstance(answer, int)
    return answer
