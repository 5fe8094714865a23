"""The broker side of the ladder: which broker, how many records a topic holds, cleanup."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from localkafka.broker import Broker


def ensure_broker() -> tuple[Broker, bool]:
    """Reuse the local broker if it runs; else start one. True when this run started it."""
    broker = Broker()
    if broker.running_pid() is not None and broker.is_ready():
        return broker, False
    broker.start()
    return broker, True


async def _partitions(bootstrap: str, topics: list[str]) -> dict[str, list[int]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Describe only what exists: the broker auto-creates topics named in metadata requests.
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return {
        t["topic"]: sorted(p["partition"] for p in t["partitions"])
        for t in described
        if t["error_code"] == 0
    }


async def _count(bootstrap: str, topics: list[str]) -> dict[str, int]:
    partitions = await _partitions(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        counts: dict[str, int] = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in partitions.get(topic, [])]
            if not tps:
                counts[topic] = 0
                continue
            end = await consumer.end_offsets(tps)
            begin = await consumer.beginning_offsets(tps)
            counts[topic] = sum(end[tp] - begin[tp] for tp in tps)
        return counts
    finally:
        await consumer.stop()


def count_records(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Records per topic. Exact here: no transactions, so no control records among offsets."""
    return asyncio.run(_count(bootstrap, topics))


async def _delete(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Remove this run's own topics (unique prefix) from the shared dev broker."""
    asyncio.run(_delete(bootstrap, topics))
