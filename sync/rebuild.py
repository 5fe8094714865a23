"""``mailpulse sync rebuild`` and ``mailpulse sync status``.

Rebuild: with the subscriber stopped, read the whole topic (no group) into
``<table>_next`` and its journal, swap them in for the live ones in one transaction, then
commit the subscriber group's offsets at the ends that were read. A crash before the swap
leaves the old table in place; one between swap and commit makes the next run repeat
commands the new journal already holds (no-ops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from processors.ops.common import describe_group, topic_partitions
from processors.ops.kafkaio import commit_offsets, group_lag
from processors.ops.progress import progress
from sync.errors import SyncError
from sync.settings import SyncSettings
from sync.store import Store, Tables
from sync.subscriber import Database, Progress

log = structlog.get_logger("mailpulse.sync")


@dataclass(frozen=True)
class Rebuilt:
    applied: int
    ends: dict[TopicPartition, int]


async def refuse_if_running(settings: SyncSettings) -> None:
    info = await describe_group(settings.bootstrap_servers, settings.group_id)
    if info.active:
        raise SyncError(f"refusing to rebuild: {info.describe()}. Stop the subscriber first.")


async def rebuild(settings: SyncSettings, store: Store) -> Rebuilt:
    """Rebuild the table from the topic's beginning; the group resumes at the ends read."""
    await refuse_if_running(settings)
    live = Tables(settings.table)
    building = live.building()
    db = Database(store)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await db.call(store.drop, building)
        await db.call(store.prepare, building)
        topic = settings.topic_name
        tps = [TopicPartition(topic, p) for p in await topic_partitions(consumer, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        totals = Progress(settings.progress_interval_s, label="sync rebuild")
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        held = sum(ends[tp] - starts[tp] for tp in tps)  # what compaction left to read
        with progress(f"sync rebuild {topic}", held) as bar:
            while pending:
                batch = await consumer.getmany(
                    *pending,
                    timeout_ms=settings.poll_timeout_ms,
                    max_records=settings.batch_max_records,
                )
                # Stop each partition at the end seen at the start: the group resumes there.
                records = [r for tp, rs in batch.items() for r in rs if r.offset < ends[tp]]
                totals.add(await db.apply(records, building))
                positions = {tp: await consumer.position(tp) for tp in tps}
                pending = {tp for tp in pending if positions[tp] < ends[tp]}
                read = sum(min(positions[tp], ends[tp]) - starts[tp] for tp in tps)
                bar.update(read, held, f"{totals.applied:,} commands applied")
        await db.call(store.swap, building, live)
        log.info("sync table rebuilt", table=live.state, applied=totals.applied)
    finally:
        await consumer.stop()
        db.close()
    await refuse_if_running(settings)  # one started meanwhile wrote to the old table
    await commit_offsets(settings.bootstrap_servers, settings.group_id, ends)
    await _check_committed(settings, ends)
    return Rebuilt(totals.applied, ends)


async def _check_committed(settings: SyncSettings, ends: dict[TopicPartition, int]) -> None:
    """The group's offsets must now be the ends read; otherwise say so (the table is
    rebuilt either way, and a run from older offsets only repeats commands)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.group_id)
    finally:
        await admin.close()
    wrong = {
        tp.partition
        for tp, end in ends.items()
        if tp not in committed or committed[tp].offset != end
    }
    if wrong:
        raise SyncError(
            f"table rebuilt, but the group's offsets on partitions {sorted(wrong)} did not "
            "take; the next run repeats those commands (no-ops). Run the rebuild again to retry."
        )


async def status(settings: SyncSettings, store: Store) -> dict[str, Any]:
    """The group's lag on the topic, its members, and the table's counts."""
    topic = settings.topic_name
    lag = await group_lag(settings.bootstrap_servers, settings.group_id, [topic])
    info = await describe_group(settings.bootstrap_servers, settings.group_id)
    db = Database(store)
    try:
        counts = await db.call(store.counts, Tables(settings.table))
    finally:
        db.close()
    return {
        "topic": topic,
        "group": settings.group_id,
        "group_state": info.state,
        "members": list(info.members),
        "lag": lag[topic],
        "dsn": store.dsn,
        "table": settings.table,
        **counts,
    }
