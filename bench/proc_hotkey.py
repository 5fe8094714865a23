"""Hot key against spread keys: the same raw events, once over many addresses, once all
for one address, each applied by a fresh worker.

``python -m bench.proc_hotkey [--events N]`` appends N NexusProMail webhooks twice, to two
raw topics, exactly as ingest appends them (body as value, ``RawWebhook`` headers, key =
source + body hash, partition by key): *spread*, each event for its own address, and
*hot*, every event for ONE address. Both have the same event types, event ids (all
distinct), event times (inside 20 hours) and message ids (one per event), in the same
order. Then fresh workers (``python -m processors worker``, RocksDB, default settings,
own group and data dir each) apply them, interleaved spread, hot, spread, hot, timed from
outside (``bench.proc_runs.timed_run``). Then its section of ``BENCHMARKS.md``. Needs the
local broker (reused if running); the run's topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from bench import proc_hotkey_report
from bench.proc_kafka import Broker
from bench.proc_runs import PARTITIONS, Names, RunResult, timed_run
from bench.proc_workload import (
    DAY_START,
    MIX,
    RawRecord,
    placed_by_key,
    preload,
    raw_record,
    webhook_body,
)
from bench.processors_throughput import ensure_broker, log
from bench.procstat import load_average
from localkafka.broker import Broker as LocalKafka
from processors.keys import is_internal
from processors.ops.kafkaio import latest_by_key, read_all
from schemas.state import AddressState

RESULTS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HOT = "seed-inbox@monitor.example.com"
SPAN_S = 20 * 3600


@dataclass
class Applied:
    """What a run left in its ``addresses`` table, read from the changelog."""

    addresses: int = 0
    counted: int = 0  # sum of every address's event counts
    largest_record: int = 0  # bytes, any record of the changelog
    records: int = 0


@dataclass
class HotRun:
    kind: str  # "spread" | "hot"
    result: RunResult
    applied: Applied

    @property
    def committed_span(self) -> float:
        """First output record to every input committed."""
        p = self.result.progress
        assert p.first_output is not None
        assert p.done is not None
        return p.done - p.first_output

    @property
    def rate(self) -> float:
        """Raw events per second, first output to all committed."""
        return self.result.events / self.committed_span

    @property
    def other_load(self) -> float:
        """Machine busy outside worker and broker over the same span, % of one core."""
        r = self.result
        own = r.cpu("worker", "first", "done")
        if "first.broker" in r.progress.cpu:
            own += r.cpu("broker", "first", "done")
        return 100 * max(0.0, r.busy("first", "done") - own) / self.committed_span


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str
    broker_note: str
    runs: list[HotRun] = field(default_factory=list)
    types: dict[str, int] = field(default_factory=dict)
    load_before: str = ""
    began: float = field(default_factory=time.monotonic)
    ended: float = 0.0

    def rates(self, kind: str) -> list[float]:
        return [r.rate for r in self.runs if r.kind == kind]

    def ratio(self) -> float:
        return statistics.mean(self.rates("hot")) / statistics.mean(self.rates("spread"))


def spread_address(n: int) -> str:
    return f"reader{n:06d}@customer-{n % 53:02d}.example.com"


def workload(count: int, hot: bool, seed: int) -> list[RawRecord]:
    """``count`` raw records; the same types, ids, times and messages for ``hot`` or not."""
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    timed: list[tuple[datetime, RawRecord]] = []
    for n in range(count):
        address = HOT if hot else spread_address(n)
        at = DAY_START + timedelta(seconds=rng.uniform(0, SPAN_S))
        kind = rng.choices(kinds, weights)[0]
        body = webhook_body(rng, n, kind, address, f"msg_{seed}_{n:06d}@mta.example.net", at)
        received = at + timedelta(seconds=rng.uniform(1, 60))
        record = raw_record(body, address, received, PARTITIONS)
        timed.append((received, placed_by_key(record, PARTITIONS)))
    timed.sort(key=lambda t: t[0])  # arrival order: by receipt time
    return [record for _, record in timed]


async def applied(bootstrap: str, topic: str) -> Applied:
    records = await read_all(bootstrap, topic)
    out = Applied(records=len(records))
    out.largest_record = max((len(r.value or b"") for r in records), default=0)
    for key, value in latest_by_key(records).items():
        if not is_internal(key):
            state = AddressState.model_validate_json(value)
            out.addresses += 1
            out.counted += sum(state.counts.values())
    return out


async def run(args: argparse.Namespace, kafka: LocalKafka, bench: Bench, workdir: Path) -> None:
    bootstrap = kafka.config.bootstrap
    # No dot in the prefix: Faust's own topics (changelogs, the assignor's) are named
    # after the app id, which is the prefix with dots as dashes; so one prefix finds all.
    base = f"bench-hotkey-{bench.run_id}-"
    raws = {kind: f"{base}{kind}.webhooks.raw" for kind in ("spread", "hot")}
    async with Broker(bootstrap) as broker:
        try:
            for kind, raw in raws.items():
                records = workload(args.events, kind == "hot", args.seed)
                await broker.create([raw], PARTITIONS)
                await preload(bootstrap, raw, records)
                log(f"{kind}: {len(records):,} raw records in {raw}")
                bench.types = dict(Counter(orjson.loads(r.value)["type"] for r in records))
            bench.load_before = load_average()
            log(f"load average before the runs: {bench.load_before}")
            for i in range(args.reps):
                for kind in ("spread", "hot"):
                    names = Names.faust(base, raws[kind], f"{kind[0]}{i + 1}")
                    result = await timed_run(
                        broker,
                        names,
                        args.events,
                        workdir / names.tag,
                        broker_pid=kafka.running_pid(),
                        timeout=args.timeout,
                        extra_env={"MAILPULSE_PROCESSORS__TOPICS__CONTROL": f"{names.out}control"},
                    )
                    run = HotRun(kind, result, await applied(bootstrap, names.addresses))
                    bench.runs.append(run)
                    log(
                        f"{names.tag}: {run.rate:,.0f} events/s to all committed "
                        f"({result.rate:,.0f}/s first to last output), {run.applied}, "
                        f"other load {run.other_load:.0f} %"
                    )
        finally:
            if not args.keep_topics:
                deleted = await broker.delete_prefixed(base)
                log(f"deleted {len(deleted)} topics {base}*")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proc_hotkey", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="raw events per run")
    parser.add_argument("--reps", type=int, default=2, help="spread, hot pairs (default 2)")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, help="keep worker logs and data dirs here")
    args = parser.parse_args(argv)

    kafka, ours = ensure_broker()
    note = "started by this run" if ours else "already running, reused"
    bench = Bench(args, f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}", note)
    try:
        with tempfile.TemporaryDirectory(prefix="mailpulse-hotkey-bench-") as tmp:
            asyncio.run(run(args, kafka, bench, args.workdir or Path(tmp)))
            bench.ended = time.monotonic()
            proc_hotkey_report.write_section(args.out, bench)
            log(f"wrote {args.out}")
    finally:
        if ours:
            kafka.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
