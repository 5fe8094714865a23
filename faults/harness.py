"""One fault scenario: ingest and a worker on the three-broker cluster under webhook load,
a fault injected part-way, then the outcome checked by readers that are not ours.

The outcome of a scenario, measured rather than assumed:

* lost: webhooks answered 200 that ``webhooks.raw`` does not hold, read back from the
  earliest offset with a plain aiokafka consumer once the cluster is whole again;
* double counted: events counted in the ``addresses`` table beyond the distinct event ids
  the raw topic holds (provider retries and repeated appends included);
* state: the disturbed generation's tables and suppression command ids equal those of a
  generation that reads the same raw topic afterwards, undisturbed.

The raw topic has one partition, so both generations see the events in the same order
and their command ids are comparable (see tests/integration/test_processors_crash.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localkafka import Cluster
from tests.integration.cluster_load import (
    Load,
    fully_in_sync,
    lost,
    raw_ids,
    send,
    sent_at_least,
    workload,
)
from tests.integration.helpers import eventually, read_all
from tests.integration.pipeline import Pipeline, explain_counts, generation_env
from tests.integration.stack import running_ingest

LIVE = "live"
TAIL_S = 3.0  # load that keeps arriving once the fault is over
MAX_RESTARTS = 3  # by the supervisor, per scenario: more is a crash loop
SETTLE_S = 600.0  # for a generation to commit every record: inside the scenarios' 900 s


@dataclass
class Worker:
    """The scenario's worker, on one data dir: killed and restarted by faults, and started
    again when it exits by itself, as a supervisor (systemd, Kubernetes) would."""

    p: Pipeline
    stack: contextlib.ExitStack
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.proc = self.stack.enter_context(
            self.p.worker(LIVE, generation_env(LIVE), datadir=LIVE)
        )

    def kill(self) -> None:
        assert self.proc is not None, "the worker was never started"
        assert self.proc.poll() is None, f"the worker had exited with {self.proc.returncode}"
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        self.restarts += 1
        self.start()

    async def supervise(self) -> None:
        """Start the worker again whenever it exits (a kill by the scenario reaps it
        first, so only exits of its own count)."""
        while True:
            await asyncio.sleep(0.5)
            if self.proc is not None and self.proc.returncode is None:
                code = self.proc.poll()
                if code is not None:
                    self.exits.append(code)
                    assert len(self.exits) <= MAX_RESTARTS, f"crash loop: exits {self.exits}"
                    self.start()


@dataclass
class Scenario:
    """What a fault sees and notes while it runs."""

    name: str
    cluster: Cluster
    p: Pipeline
    load: Load
    worker: Worker
    notes: list[str] = field(default_factory=list)
    # Monotonic time of the fault's start and of the moment it was healed.
    began: float = 0.0
    healed: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """One row of RELIABILITY.md."""

    scenario: str
    load: str
    acknowledged: int
    lost: int
    double_counted: int
    longest_without_200_s: float | None  # None: not measured (no steady load)
    caught_up_s: float | None  # None: no processors in the scenario
    statuses: dict[int, int]
    notes: tuple[str, ...]


Fault = Callable[[Scenario], Awaitable[None]]


async def run(
    cluster: Cluster,
    tmp_path: Path,
    tag: str,
    name: str,
    fault: Fault,
    *,
    warmup: int = 300,
    patience_s: float = 15.0,
) -> Outcome:
    """Run ``fault`` under load once ``warmup`` webhooks were sent, and check the outcome
    (assertions fail the scenario; the returned row is what RELIABILITY.md shows).
    ``tag`` goes into event ids and addresses, ``name`` into the report."""
    p = Pipeline(
        cluster.bootstrap, tmp_path, raw_partitions=1, replication_factor=3, min_insync_replicas=2
    )
    p.supervised = True
    load, stop = Load(), asyncio.Event()
    with contextlib.ExitStack() as stack:
        worker = Worker(p, stack)
        s = Scenario(name, cluster, p, load, worker)
        async with running_ingest(p.ingest_settings()):
            worker.start()
            supervisor = asyncio.create_task(worker.supervise())
            sending = asyncio.create_task(
                send(p, load, workload(tag), stop=stop, patience_s=patience_s)
            )
            try:
                await sent_at_least(load, warmup)
                await eventually(
                    lambda: _applied(p), bool, timeout=120, what="the worker applying events"
                )
                s.began = time.monotonic()
                await fault(s)
                s.healed = s.healed or time.monotonic()
                await asyncio.sleep(TAIL_S)
            finally:
                stop.set()
                await asyncio.wait_for(sending, timeout=300)
            load_ended = time.monotonic()
        await fully_in_sync(cluster.bootstrap, [p.topic("webhooks.raw")])
        settling = asyncio.create_task(p.settled(LIVE, hop_suffix=f".{LIVE}", timeout=SETTLE_S))
        try:
            # The supervisor ends only by failing (a crash loop): that fails the scenario.
            await asyncio.wait([settling, supervisor], return_when=asyncio.FIRST_COMPLETED)
            if supervisor.done():
                supervisor.result()
            live = await settling
        finally:
            supervisor.cancel()
            settling.cancel()
        caught_up = time.monotonic() - load_ended
    if worker.exits:
        s.notes.append(f"worker exited by itself with {worker.exits}, restarted")
    p.supervised = False  # the undisturbed run must not need a restart
    return await _check(s, live, caught_up)


async def _check(
    s: Scenario, live: tuple[dict[str, dict[str, Any]], ...], caught_up: float
) -> Outcome:
    p, load = s.p, s.load
    in_topic = await raw_ids(p)
    missing = lost(load, in_topic)
    addresses, messages = live
    counted = sum(sum(state["counts"].values()) for state in addresses.values())
    double = counted - len(in_topic)
    with p.worker("ref", generation_env("ref")):
        ref_addresses, ref_messages = await p.settled("ref", hop_suffix=".ref", timeout=SETTLE_S)
    dead = len(await read_all(p.bootstrap, p.topic(f"webhooks.dlq.{LIVE}")))
    live_commands = {c["command_id"] for c in await p.commands(LIVE)}
    ref_commands = {c["command_id"] for c in await p.commands("ref")}

    assert not missing, f"{len(missing)} webhooks answered 200 are missing: {sorted(missing)[:5]}"
    assert dead == 0, f"{dead} valid webhooks went to the DLQ"
    assert double == 0, f"{counted} events counted for {len(in_topic)} distinct event ids"
    assert not load.given_up, f"{len(load.given_up)} webhooks got only 503s: {load.given_up[:5]}"
    assert set(load.statuses) <= {200, 503}, load.statuses
    assert addresses == ref_addresses, explain_counts(addresses, ref_addresses)
    assert messages == ref_messages, "messages table differs from the undisturbed run"
    assert live_commands == ref_commands, (
        f"command ids differ: {len(live_commands - ref_commands)} only after the fault, "
        f"{len(ref_commands - live_commands)} only undisturbed"
    )
    return Outcome(
        scenario=s.name,
        load=f"{load.sent} webhooks, {len(in_topic)} distinct events",
        acknowledged=len(load.acknowledged),
        lost=len(missing),
        double_counted=double,
        longest_without_200_s=load.longest_without_200(),
        caught_up_s=caught_up,
        statuses=dict(sorted(load.statuses.items())),
        notes=tuple(s.notes),
    )


async def _applied(p: Pipeline) -> int:
    p.check_workers()
    return len(await p.table("addresses", LIVE))


def nodes(cluster: Cluster) -> Iterator[int]:
    yield from (node.config.node_id for node in cluster.nodes)
