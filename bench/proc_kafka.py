"""Broker-side measurements for the processors benchmark: topics, offsets, progress."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all its threads); zeros once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0, 0.0
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / TICKS


class Broker:
    """A thin admin/offsets client; it never names a missing topic (no auto-creation)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._partitions: dict[str, list[int]] = {}

    async def __aenter__(self) -> Broker:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def create(self, topics: Iterable[str], partitions: int) -> None:
        for name in topics:
            with contextlib.suppress(TopicAlreadyExistsError):
                await self._admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1)]
                )

    async def delete_prefixed(self, prefix: str) -> list[str]:
        doomed = [t for t in await self._admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await self._admin.delete_topics(doomed)
        return doomed

    async def tps(self, topic: str) -> list[TopicPartition]:
        if topic not in self._partitions:
            if topic not in set(await self._admin.list_topics()):
                return []
            described = await self._admin.describe_topics([topic])
            parts = [p["partition"] for d in described for p in d["partitions"]]
            if not parts:
                return []
            self._partitions[topic] = sorted(parts)
        return [TopicPartition(topic, p) for p in self._partitions[topic]]

    async def end_offsets(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        tps = [tp for t in topics for tp in await self.tps(t)]
        return dict(await self._consumer.end_offsets(tps)) if tps else {}

    async def records(self, topic: str) -> int:
        """Records in ``topic`` (no transactions here, so offsets count records)."""
        tps = await self.tps(topic)
        if not tps:
            return 0
        ends = await self._consumer.end_offsets(tps)
        begins = await self._consumer.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = await self._admin.list_consumer_group_offsets(group)
        return {tp: m.offset for tp, m in offsets.items() if m.offset >= 0}


@dataclass
class Progress:
    """When a pipeline produced its first and last output and finished its input."""

    started: float
    first_output: float | None = None
    last_output: float | None = None
    done: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # "<point>.<process>" -> seconds
    busy: dict[str, float] = field(default_factory=dict)  # point -> machine busy seconds

    def mark(self, point: str, pids: dict[str, int]) -> None:
        for name, pid in pids.items():
            user, system = cpu_times(pid)
            self.cpu[f"{point}.{name}"] = user + system
            self.cpu[f"{point}.{name}.sys"] = system
        self.busy[point] = busy_seconds()


async def watch(
    broker: Broker,
    *,
    group: str,
    inputs: list[str],
    outputs: list[str],
    expected_raw: int,
    pids: dict[str, int],
    alive: Callable[[], bool],
    started: float,
    timeout: float,
    interval: float = 0.2,
    output_base: int = 0,
) -> Progress:
    """Poll until ``group`` committed every input topic up to its end offsets.

    ``inputs[0]`` is the raw topic and must reach ``expected_raw``; the others are
    internal hops (complete once the raw topic is). Output = sum of ``outputs`` end
    offsets: its first and last change time the processing span. ``output_base``: that
    sum before the process started (records already there are not its output).
    """
    progress = Progress(started)
    progress.mark("start", pids)
    last_out = output_base
    deadline = started + timeout
    while True:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{group} not done within {timeout:.0f}s")
        if not alive():
            raise RuntimeError(f"the process of {group} exited")
        out = sum((await broker.end_offsets(outputs)).values())
        if out != last_out:
            last_out = out
            if progress.first_output is None:
                progress.first_output = now
                progress.mark("first", pids)
            progress.last_output = now
            progress.mark("last", pids)
        ends = await broker.end_offsets(inputs)
        committed = await broker.committed(group)
        raw_end = sum(v for tp, v in ends.items() if tp.topic == inputs[0])
        if raw_end >= expected_raw and all(committed.get(tp, 0) >= e for tp, e in ends.items()):
            progress.done = time.monotonic()
            progress.mark("done", pids)
            return progress
        await asyncio.sleep(interval)


async def latest_by_key(broker: Broker, topic: str) -> tuple[int, dict[bytes, bytes]]:
    """(records read, key -> sha256 of the latest value) of a whole topic."""
    tps = await broker.tps(topic)
    if not tps:
        return 0, {}
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    latest: dict[bytes, bytes] = {}
    count = 0
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
            for part in batch.values():
                for r in part:
                    count += 1
                    if r.key is None or r.key[:1] in (b"\x00", b"\x01"):
                        continue  # a table's index entries (processors/keys.py)
                    if r.value is not None:
                        latest[r.key] = hashlib.sha256(r.value).digest()
                    else:
                        latest.pop(r.key, None)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return count, latest
