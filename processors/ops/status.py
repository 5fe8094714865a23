"""``mailpulse status``: is the pipeline healthy? One screen (or ``--json``).

Per generation of the app (the live one marked): consumer lag per input topic (end
offsets minus the group's committed offsets), raw records consumed per second, DLQ
records and the newest DLQ reason, suppression commands published, the group's members;
and whether the broker answers. Rates come from two samples of the offsets taken
``--interval`` seconds apart.

Exit status 0 when healthy, 1 when a rule is broken (each is named on the screen and in
``problems``): ``broker_unreachable``, ``no_live_generation``, ``no_members`` (nothing
consumes the live generation's raw log), ``lag_growing`` (the live lag grew between the
samples and is above ``--max-lag``), ``dlq_growing`` (a DLQ record appended between the
samples or within ``--dlq-window`` seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from processors.generations import generation_topics, read_active
from processors.ops.common import OpsError, describe_group
from processors.ops.health import (
    BrokerStatus,
    DlqNewest,
    GenerationStatus,
    Status,
    Thresholds,
    judge,
    render,
)
from processors.ops.kafkaio import _stop_quietly
from processors.settings import ProcessorSettings, load_settings
from schemas.dlq import DlqRecord

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    ends: dict[TopicPartition, int]
    committed: dict[str, dict[TopicPartition, int]]  # per group


def _sum(offsets: dict[TopicPartition, int], topic: str) -> int:
    return sum(v for tp, v in offsets.items() if tp.topic == topic)


class Prober:
    """One admin client and one consumer (no group) over the whole status run."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        bootstrap = settings.bootstrap_servers
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self.partitions: dict[str, list[int]] = {}

    async def start(self) -> int:
        """Connect; the number of brokers in the cluster."""
        await self.admin.start()
        await self.consumer.start()
        metadata = await self.consumer._client.fetch_all_metadata()
        self.partitions = {
            t: sorted(metadata.partitions_for_topic(t) or ()) for t in metadata.topics()
        }
        cluster = await self.admin.describe_cluster()
        return len(cluster["brokers"])

    async def stop(self) -> None:
        await self.admin.close()
        await _stop_quietly(self.consumer)

    def tps(self, topics: list[str]) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t in topics for p in self.partitions.get(t, ())]

    async def generations(self) -> tuple[str | None, list[str]]:
        """The active generation and every generation the broker knows a group of."""
        s = self.settings
        active = await read_active(s)
        prefix = f"{s.app_id}-"
        groups = [g for g, _ in await self.admin.list_consumer_groups() if g.startswith(prefix)]
        found = {g[len(prefix) :] for g in groups} | {s.generation}
        if active is not None:
            found.add(active.generation)
        return (active.generation if active else None), sorted(found)

    async def sample(self, topics: list[str], groups: list[str]) -> Sample:
        tps = self.tps(topics)
        ends = await self.consumer.end_offsets(tps) if tps else {}
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            offsets = await self.admin.list_consumer_group_offsets(group)
            committed[group] = {tp: max(m.offset, 0) for tp, m in offsets.items()}
        return Sample(time.monotonic(), dict(ends), committed)

    async def held(self, topic: str, ends: dict[TopicPartition, int]) -> int:
        """Records ``topic`` holds now (retention may have deleted older ones)."""
        tps = self.tps([topic])
        starts = await self.consumer.beginning_offsets(tps) if tps else {}
        return sum(ends.get(tp, 0) - start for tp, start in starts.items())

    async def newest_dlq(self, topic: str, ends: dict[TopicPartition, int]) -> DlqNewest | None:
        """Read the last record of each partition of ``topic``; the newest one's reason."""
        tps = [tp for tp in self.tps([topic]) if ends.get(tp, 0) > 0]
        if not tps:
            return None
        self.consumer.assign(tps)
        for tp in tps:
            self.consumer.seek(tp, ends[tp] - 1)
        last: dict[TopicPartition, Any] = {}
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while len(last) < len(tps) and time.monotonic() < deadline:
            batch = await self.consumer.getmany(*tps, timeout_ms=500)
            for tp, records in batch.items():
                if records:
                    last[tp] = records[-1]
        if not last:
            return None
        newest = max(last.values(), key=lambda r: r.timestamp)
        try:
            record = DlqRecord.model_validate_json(newest.value or b"")
        except ValidationError:
            return DlqNewest(reason="unreadable", stage="?", failed_at=None)
        return DlqNewest(reason=record.reason, stage=record.stage, failed_at=record.failed_at)


def _rate(after: int, before: int, seconds: float) -> float:
    return round(max(after - before, 0) / seconds, 2) if seconds > 0 else 0.0


async def _generation(
    prober: Prober, name: str, active: str | None, first: Sample, second: Sample
) -> GenerationStatus:
    # With no active generation yet, the first worker to start claims its own: live names.
    live, shadow = name == active, active is not None and name != active
    settings = prober.settings.model_copy(update={"generation": name})
    names = generation_topics(settings, shadow=shadow)
    group = settings.group_id
    info = await describe_group(settings.bootstrap_servers, group)
    seconds = second.at - first.at

    def lag(sample: Sample, topic: str) -> int | None:
        if topic not in prober.partitions:
            return None
        done = sample.committed.get(group, {})
        return sum(end - done.get(tp, 0) for tp, end in sample.ends.items() if tp.topic == topic)

    before = sum(v for t in names.inputs if (v := lag(first, t)) is not None)
    consumed = [_sum(s.committed.get(group, {}), names.raw) for s in (first, second)]
    commands = [_sum(s.ends, names.suppression) for s in (first, second)]
    dlq = [_sum(s.ends, names.dlq) for s in (first, second)]
    return GenerationStatus(
        generation=name,
        live=live,
        group=group,
        state=info.state,
        members=info.members,
        lag={t: lag(second, t) for t in names.inputs},
        lag_before=before,
        events_per_s=_rate(consumed[1], consumed[0], seconds),
        dlq_topic=names.dlq,
        dlq_records=await prober.held(names.dlq, second.ends),
        dlq_new=max(dlq[1] - dlq[0], 0),
        dlq_newest=await prober.newest_dlq(names.dlq, second.ends),
        commands_topic=names.suppression,
        commands_published=commands[1],
        commands_per_s=_rate(commands[1], commands[0], seconds),
    )


async def gather(settings: ProcessorSettings, interval_s: float) -> Status:
    """Sample the broker twice, ``interval_s`` apart, and describe every generation; a
    broker that does not answer (at the start or midway) is the status itself."""
    raw = generation_topics(settings, shadow=False).raw
    prober = Prober(settings)
    try:
        brokers = await asyncio.wait_for(prober.start(), CONNECT_TIMEOUT_S)
        return await _sampled(prober, raw, brokers, interval_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        broker = BrokerStatus(settings.bootstrap_servers, False, error=f"{exc!r:.300}")
        return Status(broker, raw, 0, 0.0, interval_s)
    finally:
        await prober.stop()


async def _sampled(prober: Prober, raw: str, brokers: int, interval_s: float) -> Status:
    settings = prober.settings
    active, names = await prober.generations()
    topics = [raw]
    for name in names:
        shadow = active is not None and name != active
        t = generation_topics(settings.model_copy(update={"generation": name}), shadow=shadow)
        topics += [*t.inputs[1:], t.dlq, t.suppression]
    groups = [f"{settings.app_id}-{n}" for n in names]
    first = await prober.sample(topics, groups)
    await asyncio.sleep(interval_s)
    second = await prober.sample(topics, groups)
    generations = [await _generation(prober, n, active, first, second) for n in names]
    return Status(
        BrokerStatus(settings.bootstrap_servers, True, brokers),
        raw_topic=raw,
        raw_records=await prober.held(raw, second.ends),
        raw_in_per_s=_rate(_sum(second.ends, raw), _sum(first.ends, raw), second.at - first.at),
        interval_s=round(second.at - first.at, 2),
        generations=tuple(sorted(generations, key=lambda g: (not g.live, g.generation))),
    )


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"mailpulse status: invalid processors settings:\n{exc}", file=sys.stderr)
        return 1
    limits = Thresholds(max_lag=args.max_lag, dlq_window=timedelta(seconds=args.dlq_window))
    try:
        status = asyncio.run(gather(settings, args.interval))
    except OpsError as exc:
        print(f"mailpulse status: {exc}", file=sys.stderr)
        return 1
    status = replace(status, problems=judge(status, datetime.now(UTC), limits))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(status.as_json(), default=_dump) + b"\n")
    else:
        print(render(status))
    return 0 if status.healthy else 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="lag, rates, DLQ, commands and members per generation; exit 1 when unhealthy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the screen")
    parser.add_argument(
        "--interval", type=float, default=3.0, help="seconds between the two samples (default 3)"
    )
    parser.add_argument(
        "--max-lag",
        type=int,
        default=Thresholds.max_lag,
        help="growing lag is a problem above this many records (default %(default)s)",
    )
    parser.add_argument(
        "--dlq-window",
        type=float,
        default=Thresholds.dlq_window.total_seconds(),
        help="a DLQ record younger than this many seconds is a problem (default %(default)s)",
    )
    parser.set_defaults(func=run)
