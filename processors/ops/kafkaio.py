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


class GroupLag:
    """Reads consumer groups' lag, again and again, over the same two clients.

    A client that starts fetches the metadata of every topic of the cluster, and decoding
    it is pure Python: on a broker with a few thousand topics, the three fetches a fresh
    pair of clients made per reading cost a worker that reports its lag every 15 s a
    tenth of its CPU. Kept open, the clients read partitions from the metadata they hold
    (their own periodic refresh keeps it current) and fetch it again only for a topic it
    lacks; never by topic name, which would make the broker auto-create a missing topic.
    """

    def __init__(self, bootstrap: str) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> GroupLag:
        await self._admin.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._admin.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._admin.close()
        finally:
            await self._consumer.stop()

    async def _partitions(self, topic: str) -> set[int]:
        known = self._consumer.partitions_for_topic(topic)
        if known is None:  # created after the clients started
            known = (await self._consumer._client.fetch_all_metadata()).partitions_for_topic(topic)
        return set(known or ())

    async def lag(self, group_id: str, topics: Sequence[str]) -> dict[str, int]:
        """Per topic: end offsets minus the group's committed offsets, summed over
        partitions."""
        committed = await self._admin.list_consumer_group_offsets(group_id)
        lag: dict[str, int] = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in sorted(await self._partitions(topic))]
            ends = await self._consumer.end_offsets(tps) if tps else {}
            done = {tp: committed[tp].offset for tp in tps if tp in committed}
            lag[topic] = sum(end - max(done.get(tp, 0), 0) for tp, end in ends.items())
        return lag


async def group_lag(bootstrap: str, group_id: str, topics: Sequence[str]) -> dict[str, int]:
    """Per topic: end offsets minus the group's committed offsets, summed over partitions
    (one reading; ``GroupLag`` for many)."""
    async with GroupLag(bootstrap) as reader:
        return await reader.lag(group_id, topics)


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
