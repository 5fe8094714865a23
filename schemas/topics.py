"""The Kafka topics of the contract (DESIGN.md §2) and creating them idempotently."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

DAY_MS = 24 * 3600 * 1000

# Topic configs by role. The raw log is the source of truth every rebuild starts from, so it
# keeps a long retention; suppression commands are compacted (latest state per address).
RAW_CONFIG = {"retention.ms": str(90 * DAY_MS)}
EVENTS_CONFIG = {"retention.ms": str(30 * DAY_MS)}
DLQ_CONFIG = {"retention.ms": str(90 * DAY_MS)}
COMPACTED_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(3600 * 1000)}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    # ``min.insync.replicas`` of the topic: with acks=all, a write is refused (the client
    # retries, ingest answers 503) while fewer replicas are in sync. None: the broker's.
    min_insync_replicas: int | None = None

    def topic_configs(self) -> dict[str, str]:
        return {**self.config, **durability_config(self.min_insync_replicas)}


def durability_config(min_insync_replicas: int | None) -> dict[str, str]:
    """The topic config for ``min_insync_replicas`` (None: the broker's default)."""
    if min_insync_replicas is None:
        return {}
    return {"min.insync.replicas": str(min_insync_replicas)}


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> None:
    """Create each topic that does not exist yet; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication_factor,
                topic_configs=s.topic_configs(),
            )
            for s in specs
            if s.name not in existing
        ]
        for topic in missing:
            # Another process may create it between list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([topic])
    finally:
        await admin.close()
