"""Reading topics whole: a table's changelog or a compacted topic as it stands now."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from processors.keys import is_internal


async def read_all(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record now in ``topic`` (all partitions, up to the current end offsets)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        # Metadata of all topics: asking for one missing topic by name would make the
        # broker auto-create it with the wrong partition count.
        metadata = await consumer._client.fetch_all_metadata()
        partitions = metadata.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for part in batch.values():
                records.extend(part)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await _stop_quietly(consumer)


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    # aiokafka 0.14 can raise CancelledError from stop() when no partition was ever
    # assigned (its internal reset task is cancelled); only swallow that case.
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


def latest_by_key(records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[bytes, bytes]:
    """What a compacted topic (or a table's changelog) says now: last value per key."""
    latest: dict[bytes, bytes] = {}
    for r in records:
        if r.key is None:
            continue
        if r.value is None:
            latest.pop(r.key, None)
        else:
            latest[r.key] = r.value
    return latest


def changelog_topic(group_id: str, table: str) -> str:
    """Faust's name for the changelog of ``table`` in the app (consumer group) ``group_id``."""
    return f"{group_id}-{table}-changelog"


async def read_table(bootstrap: str, group_id: str, table: str) -> dict[bytes, bytes]:
    """A table's state records as its changelog says now (index entries left out)."""
    latest = latest_by_key(await read_all(bootstrap, changelog_topic(group_id, table)))
    return {k: v for k, v in latest.items() if not is_internal(k)}


async def group_lag(bootstrap: str, group_id: str, topics: Sequence[str]) -> dict[str, int]:
    """Per topic: end offsets minus the group's committed offsets, summed over partitions."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
        metadata = await consumer._client.fetch_all_metadata()
        lag: dict[str, int] = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in metadata.partitions_for_topic(topic) or ()]
            ends = await consumer.end_offsets(tps) if tps else {}
            done = {tp: committed[tp].offset for tp in tps if tp in committed}
            lag[topic] = sum(end - max(done.get(tp, 0), 0) for tp, end in ends.items())
        return lag
    finally:
        await admin.close()
        await consumer.stop()


async def commit_offsets(
    bootstrap: str, group_id: str, offsets: Mapping[TopicPartition, int]
) -> None:
    """Commit ``offsets`` for ``group_id`` from outside it: a consumer in the group with the
    partitions assigned by hand. The broker rejects it while the group has live members."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(dict(offsets))
    finally:
        await _stop_quietly(consumer)


async def commit_to_end(bootstrap: str, group_id: str, topics: Sequence[str]) -> None:
    """Commit ``group_id``'s offsets on ``topics`` at their current end (group not running)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(metadata.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await _stop_quietly(consumer)
    if ends:
        await commit_offsets(bootstrap, group_id, ends)
