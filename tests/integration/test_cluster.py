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
from pathlib import Path

import pytest

from localkafka import Cluster
from tests.integration.cluster_load import (
    Load,
    fully_in_sync,
    leader_of,
    lost,
    raw_ids,
    send,
    sent_at_least,
    workload,
)
from tests.integration.pipeline import Pipeline
from tests.integration.stack import running_ingest

EVENTS = 600


async def _fault_under_load(cluster: Cluster, tmp_path: Path, fault: str) -> tuple[Pipeline, Load]:
    p = Pipeline(cluster.bootstrap, tmp_path, replication_factor=3, min_insync_replicas=2)
    load = Load()
    raw = p.topic("webhooks.raw")
    async with running_ingest(p.ingest_settings()):
        sending = asyncio.create_task(
            send(p, load, workload(fault), stop=asyncio.Event(), limit=EVENTS)
        )
        await sent_at_least(load, EVENTS // 3)
        victim = await leader_of(cluster.bootstrap, raw, 0)
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
    return p, load


@pytest.mark.timeout(420)
@pytest.mark.parametrize("fault", ["kill", "stop"], ids=["kill_9_of_a_leader", "stop_of_a_leader"])
async def test_a_lost_partition_leader_loses_no_acknowledged_webhook(
    kafka_cluster: Cluster, tmp_path: Path, fault: str
) -> None:
    p, load = await _fault_under_load(kafka_cluster, tmp_path, fault)
    in_topic = await raw_ids(p)
    missing = lost(load, in_topic)
    assert not missing, f"{len(missing)} webhooks answered 200 are missing: {sorted(missing)[:5]}"
    assert not load.given_up, f"{len(load.given_up)} webhooks got 503 for 15 s"
    assert load.sent == EVENTS
    assert set(load.statuses) <= {200, 503}
    # The restarted node catches up: every partition back to three in-sync replicas.
    await fully_in_sync(kafka_cluster.bootstrap, [p.topic("webhooks.raw")])
    print(
        f"\n{len(load.acknowledged)} acknowledged, {sum(in_topic.values())} records, "
        f"statuses {dict(load.statuses)}"
    )
