"""Ingest on a three-broker cluster (RF 3, min ISR 2) while a broker dies or stops.

The short subset of the fault suite that runs in CI: under ingest load, kill -9 the node
leading a partition of ``webhooks.raw``, or stop a node cleanly; then start it again.
Every webhook answered 200 must be in the topic, read back from the earliest offset
with a plain aiokafka consumer; a 503 is allowed while the partition has no leader (the
sender retries it, as providers do), a 200 for a record the topic lacks is not. Ingest
is never restarted: its 200s must come back by themselves.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from localkafka import Cluster
from tests.integration.helpers import eventually, read_all
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import running_ingest

EVENTS = 600
SENDERS = 12
RETRIES = 60  # per webhook, 0.25 s apart: a sender gives up only after 15 s of 503s


@dataclass
class Load:
    """What the senders got back, per event id."""

    acknowledged: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    given_up: list[str] = field(default_factory=list)
    sent: int = 0


async def _send_all(p: Pipeline, load: Load, events: list[dict[str, object]]) -> None:
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            event = queue.get_nowait()
            load.sent += 1
            for _ in range(RETRIES):
                status = await p.post_nexus(session, event)
                load.statuses[status] += 1
                if status == 200:
                    load.acknowledged.add(str(event["id"]))
                    break
                assert status == 503, f"{status} for a valid webhook"
                await asyncio.sleep(0.25)
            else:
                load.given_up.append(str(event["id"]))
            await asyncio.sleep(0.01)  # about SENDERS x 60 webhooks/s

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))


async def _leader_of(bootstrap: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        leaders = {p["partition"]: p["leader"] for p in described["partitions"]}
        return int(leaders[partition])
    finally:
        await admin.close()


async def _in_sync(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return sorted(len(p["isr"]) for p in described["partitions"])
    finally:
        await admin.close()


def _events(tag: str) -> list[dict[str, object]]:
    return [
        nexus_event("delivered", f"{tag}-{n}@cluster.example", n=n, at="2026-05-13T10:00:00Z")
        | {"id": f"evt_{tag}_{n}"}
        for n in range(EVENTS)
    ]


async def _fault_under_load(
    cluster: Cluster, tmp_path: Path, fault: str
) -> tuple[Pipeline, Load, int]:
    p = Pipeline(cluster.bootstrap, tmp_path, replication_factor=3, min_insync_replicas=2)
    load = Load()
    events = _events(fault)
    raw = p.topic("webhooks.raw")
    async with running_ingest(p.ingest_settings()):
        sending = asyncio.create_task(_send_all(p, load, events))

        async def sent() -> int:
            return load.sent

        await eventually(sent, lambda n: n >= EVENTS // 3, timeout=60, what="a third sent")
        victim = await _leader_of(cluster.bootstrap, raw, 0)
        acknowledged_before = len(load.acknowledged)
        # On a thread: a clean stop waits for the broker to exit, and ingest serves the
        # load in this event loop meanwhile.
        if fault == "kill":
            assert await asyncio.to_thread(cluster.signal_node, victim, signal.SIGKILL)
        else:
            assert await asyncio.to_thread(cluster.stop_node, victim)
        try:
            await asyncio.wait_for(sending, timeout=240)
        finally:
            await asyncio.to_thread(cluster.start_node, victim)
        assert len(load.acknowledged) > acknowledged_before, "no 200 after the fault"
    return p, load, victim


async def _check(cluster: Cluster, p: Pipeline, load: Load) -> None:
    raw = p.topic("webhooks.raw")
    records = await read_all(cluster.bootstrap, raw)
    in_topic = Counter(str(orjson.loads(r.value)["id"]) for r in records)
    lost = load.acknowledged - set(in_topic)
    assert not lost, f"{len(lost)} webhooks answered 200 are not in {raw}: {sorted(lost)[:5]}"
    assert not load.given_up, f"{len(load.given_up)} webhooks got 503 for 15 s"
    assert len(load.acknowledged) == EVENTS
    assert set(load.statuses) <= {200, 503}
    # The restarted node catches up: every partition back to three in-sync replicas.
    await eventually(
        lambda: _in_sync(cluster.bootstrap, raw), lambda isr: isr == [3] * len(isr),
        timeout=120, what=f"three in-sync replicas for every partition of {raw}",
    )  # fmt: skip
    print(
        f"\n{len(load.acknowledged)} acknowledged, {sum(in_topic.values())} records "
        f"({sum(n - 1 for n in in_topic.values())} repeated appends), statuses "
        f"{dict(load.statuses)}"
    )


@pytest.mark.timeout(420)
@pytest.mark.parametrize("fault", ["kill", "stop"], ids=["kill_9_of_a_leader", "stop_of_a_leader"])
async def test_a_lost_partition_leader_loses_no_acknowledged_webhook(
    kafka_cluster: Cluster, tmp_path: Path, fault: str
) -> None:
    p, load, _ = await _fault_under_load(kafka_cluster, tmp_path, fault)
    await _check(kafka_cluster, p, load)
