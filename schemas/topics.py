"""The Kafka topics of the contract (DESIGN.md §2) and creating them idempotently."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest

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


async def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpec], visible_timeout_s: float = 60.0
) -> None:
    """Create each topic that does not exist yet (existing ones are left as they are), and
    return once the metadata of every broker that answers names a leader for each
    partition of them all. Retriable client errors are retried until ``visible_timeout_s``.

    Why wait for every broker: a client's metadata comes from whichever broker it asks. A
    Faust worker whose group leader assigned partitions from metadata that lacked a
    just-created changelog ignored that topic, and its table recovery then waited for
    partitions nobody was given: the worker answered "rebalancing" for good.
    """
    specs = list(specs)
    deadline = time.monotonic() + visible_timeout_s
    while True:
        try:
            return await _ensure(bootstrap, specs, deadline)
        except KafkaError as exc:
            # A broker down (a worker started during a leader change): a new client asks
            # another node. Anything else, or still failing at the deadline, is raised.
            if not exc.retriable or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def _ensure(bootstrap: str, specs: list[TopicSpec], deadline: float) -> None:
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
        # A topic that existed keeps its own partition count (checked elsewhere, where it
        # matters); one created here must show all of its partitions.
        created = {t.name for t in missing}
        partitions = {s.name: s.partitions if s.name in created else None for s in specs}
        await _visible_everywhere(admin, partitions, deadline)
    finally:
        await admin.close()


async def _visible_everywhere(
    admin: AIOKafkaAdminClient, partitions: Mapping[str, int | None], deadline: float
) -> None:
    """Wait until each broker that answers knows every topic with a leader for each of its
    partitions (``partitions[name]`` of them, when not None)."""
    client = admin._client
    request = MetadataRequest(topics=list(partitions), allow_auto_topic_creation=False)
    while True:
        await client.force_metadata_update()
        lacking: dict[int, list[str]] = {}
        for broker in client.cluster.brokers():
            if not await client.ready(broker.nodeId):
                continue  # a broker down answers no client either
            answer = (await client.send(broker.nodeId, request)).to_object()
            # Per topic the broker knows: its partition count, 0 while one has no leader.
            led = {
                t["topic"]: len(t["partitions"]) * all(p["leader"] >= 0 for p in t["partitions"])
                for t in answer["topics"]
                if t["error_code"] == 0
            }
            short = [
                name
                for name, n in partitions.items()
                if not led.get(name) or (n is not None and led[name] < n)
            ]
            if short:
                lacking[broker.nodeId] = short
        if not lacking:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics without a leader in a broker's metadata: {lacking}")
        await asyncio.sleep(0.2)
