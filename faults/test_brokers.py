"""Broker and worker faults under ingest and processors load (see faults/harness.py)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from faults.harness import Fault, Outcome, Scenario, nodes, run
from faults.report import Rows
from localkafka import Cluster
from tests.integration.cluster_load import fully_in_sync, leader_of, sent_at_least
from tests.integration.helpers import eventually, http_status, wait_status

pytestmark = pytest.mark.timeout(900)

OUTAGE_S = 30.0
PAUSE_S = 20.0


async def _raw_leader(s: Scenario) -> int:
    return await leader_of(s.cluster.bootstrap, s.p.topic("webhooks.raw"), 0)


async def leader_killed(s: Scenario) -> None:
    """kill -9 of the node leading the raw partition; started again after 10 s."""
    victim = await _raw_leader(s)
    s.notes.append(f"killed node {victim}")
    assert await asyncio.to_thread(s.cluster.signal_node, victim, signal.SIGKILL)
    await asyncio.sleep(10)
    await asyncio.to_thread(s.cluster.start_node, victim)


async def all_brokers_down(s: Scenario) -> None:
    """Every node stopped for 30 s: ingest must answer 503 with Retry-After and /readyz must
    fail meanwhile, and accept again by itself once the nodes are back."""
    await asyncio.to_thread(s.cluster.stop)
    down_at = time.monotonic()
    readyz = f"http://127.0.0.1:{s.p.ingest_port}/readyz"
    seen: set[int | str] = set()
    async with aiohttp.ClientSession() as session:
        await wait_status(session, readyz, 503, timeout=OUTAGE_S / 2)
        noticed = time.monotonic() - down_at
        while time.monotonic() < down_at + OUTAGE_S:
            seen.add(await http_status(session, readyz))
            await asyncio.sleep(1)
    up_at = time.monotonic()
    assert seen == {503}, f"/readyz answered {seen} while every broker was down"
    s.notes.append(f"/readyz 503 {noticed:.1f} s after the last stop")
    accepted = s.load.accepted_between(down_at, up_at)
    assert not accepted, f"{len(accepted)} webhooks answered 200 while every broker was down"
    answered = [a for a in s.load.answers if down_at <= a.sent and a.answered < up_at]
    assert answered, "no webhook answered while the brokers were down"
    s.notes.append(f"{len(answered)} answers while down, all 503")
    await asyncio.to_thread(s.cluster.start)
    s.healed = time.monotonic()


async def broker_paused(s: Scenario) -> None:
    """SIGSTOP of the raw partition's leader for 20 s, then SIGCONT."""
    victim = await _raw_leader(s)
    s.notes.append(f"paused node {victim}")
    assert await asyncio.to_thread(s.cluster.signal_node, victim, signal.SIGSTOP)
    try:
        await asyncio.sleep(PAUSE_S)
    finally:
        assert await asyncio.to_thread(s.cluster.signal_node, victim, signal.SIGCONT)


async def worker_killed_in_leader_change(s: Scenario) -> None:
    """kill -9 of the node leading the raw partition and, a moment later while leadership
    moves, of the worker; the worker restarts on its data dir, the node after 10 s."""
    changelog = f"{s.p.group('live')}-addresses-changelog"
    await eventually(
        lambda: leader_of(s.cluster.bootstrap, changelog, 0), lambda n: n >= 0, timeout=60,
        what=f"{changelog} created",
    )  # fmt: skip
    victim = await _raw_leader(s)
    assert await asyncio.to_thread(s.cluster.signal_node, victim, signal.SIGKILL)
    await asyncio.sleep(0.5)
    s.worker.kill()
    s.notes.append(f"killed node {victim}, then the worker")
    await asyncio.sleep(2)
    s.worker.restart()
    await asyncio.sleep(8)
    await asyncio.to_thread(s.cluster.start_node, victim)


async def rolling_restart(s: Scenario) -> None:
    """Each node in turn stopped cleanly and started again, the next one only once every
    partition of the raw topic is back to three in-sync replicas."""
    for node in nodes(s.cluster):
        assert await asyncio.to_thread(s.cluster.stop_node, node)
        await asyncio.to_thread(s.cluster.start_node, node)
        await fully_in_sync(s.cluster.bootstrap, [s.p.topic("webhooks.raw")])
        await sent_at_least(s.load, s.load.sent + 100)
    s.notes.append("nodes restarted one by one")


# id: (what RELIABILITY.md calls it, the fault, how long a sender retries 503s)
SCENARIOS: dict[str, tuple[str, Fault, float]] = {
    "leader_kill": ("kill -9 of the raw partition's leader", leader_killed, 15.0),
    "all_down": ("all three brokers stopped for 30 s", all_brokers_down, 180.0),
    "leader_pause": ("raw partition's leader paused (SIGSTOP) 20 s", broker_paused, 60.0),
    "worker_kill": (
        "kill -9 of the worker during a leader change",
        worker_killed_in_leader_change,
        15.0,
    ),
    "rolling_restart": ("rolling restart of the three brokers", rolling_restart, 60.0),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_scenario(kafka_cluster: Cluster, tmp_path: Path, rows: Rows, scenario: str) -> None:
    name, fault, patience_s = SCENARIOS[scenario]
    try:
        outcome: Outcome = await run(
            kafka_cluster, tmp_path, scenario, name, fault, patience_s=patience_s
        )
    except BaseException as exc:
        rows.failed(name, exc)
        raise
    finally:
        # A scenario leaves the cluster whole for the next one, whatever happened.
        await asyncio.to_thread(kafka_cluster.start)
    rows.add(outcome)
