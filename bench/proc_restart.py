"""Restart cost against table size: full restore, restart after SIGTERM, after kill -9.

``python -m bench.proc_restart [--sizes 100000 1000000]`` builds, per size, the state of
that many addresses straight into a new ``addresses`` changelog (bench/proc_state.py),
then starts the real worker (``python -m processors worker``, RocksDB, default settings,
log level info) on it several times, each time after appending one new raw webhook for an
existing address to the raw topic exactly as ingest would:

1. on an empty data dir: Faust restores the whole changelog (the *full restore*);
2. again on the same data dir after SIGTERM, ``--rounds`` times, the sizes interleaved;
3. on the same data dir right after a ``kill -9`` of the last of those workers.

Each start is timed from process start to the new event's record in the changelog
(applied) and to every input committed; the idle worker's RSS is read after that. Then
its section of ``BENCHMARKS.md``. Needs the local broker (reused if running); every
topic of the run has its own prefix and is deleted at the end, the data dirs too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import proc_restart_report
from bench.proc_kafka import Broker, Progress, watch
from bench.proc_restart_report import read_phases
from bench.proc_runs import CONFIG, PARTITIONS, Names, command, faust_env, process
from bench.proc_state import (
    NEW_EVENTS_AT,
    address_of,
    address_records,
    create_topics,
    is_suppressed,
    produce,
    worker_settings,
)
from bench.proc_workload import key_partition, placed_by_key, preload, raw_record, webhook_body
from bench.processors_throughput import ensure_broker, log
from bench.procstat import load_average, memory
from localkafka.broker import Broker as LocalKafka

RESULTS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
P = "MAILPULSE_PROCESSORS__"


@dataclass
class World:
    """One size's topics, settings and data dir, kept across its worker starts."""

    size: int
    names: Names
    control: str
    datadir: Path
    records: int = 0  # changelog records built
    build_s: float = 0.0
    raw: int = 0  # raw records appended so far
    starts: int = 0

    def env(self, bootstrap: str) -> dict[str, str]:
        env = faust_env(self.names, bootstrap, self.datadir)
        # Default settings (log level info: the phases below come from the worker's log).
        env |= {f"{P}TOPICS__CONTROL": self.control, f"{P}LOG_LEVEL": "info"}
        return env


@dataclass
class Start:
    """One worker start on a world, and how it went."""

    size: int
    kind: str  # "full restore" | "after SIGTERM" | "after kill -9"
    applied_s: float  # process start -> the new event's state record in the changelog
    committed_s: float  # process start -> every input committed
    cpu_s: float  # worker CPU seconds until applied
    rss: int  # bytes, idle after applying
    peak_rss: int
    other_load: float  # machine busy outside worker and broker, % of one core
    stopped_by: str
    stop_s: float | None = None  # SIGTERM -> exit
    phases: dict[str, float] = field(default_factory=dict)  # log event -> s from start


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str
    broker_note: str
    worlds: list[World] = field(default_factory=list)
    starts: list[Start] = field(default_factory=list)
    load_before: str = ""
    began: float = field(default_factory=time.monotonic)
    ended: float = 0.0


def prefix(bench: Bench) -> str:
    """Of every topic of the run. No dot: Faust names its own topics (changelogs, the
    assignor's) after the app id, the prefix with dots as dashes."""
    return f"bench-restart-{bench.run_id}-"


async def build(broker: Broker, bench: Bench, size: int, workdir: Path) -> World:
    """Topics as the worker creates them, and ``size`` addresses in the changelog."""
    base = prefix(bench)
    tag = f"s{size}"
    names = Names.faust(base, f"{base}{tag}.webhooks.raw", tag)
    world = World(size, names, f"{base}{tag}.mailpulse.control", workdir / tag / "data")
    settings = worker_settings(names, broker.bootstrap, world.control)
    await create_topics(settings, names)
    began = time.monotonic()
    world.records = await produce(
        broker.bootstrap, names.addresses, address_records(size, settings)
    )
    world.build_s = time.monotonic() - began
    log(f"{size:,} addresses: {world.records:,} changelog records in {world.build_s:.1f}s")
    return world


async def append_event(bootstrap: str, world: World) -> str:
    """One new webhook for an existing, unsuppressed address; returns the address."""
    world.starts += 1
    i = (world.starts * 7_919 + world.size // 3) % world.size
    while is_suppressed(i):
        i = (i + 1) % world.size
    address = address_of(i)
    at = NEW_EVENTS_AT + timedelta(minutes=world.starts)
    body = webhook_body(random.Random(i), i, "opened", address, f"msg-new-{i}", at)
    record = placed_by_key(raw_record(body, address, at, PARTITIONS), PARTITIONS)
    await preload(bootstrap, world.names.raw, [record])
    world.raw += 1
    return address


async def applied_key(broker: Broker, tp: TopicPartition, offset: int, key: bytes) -> bool:
    """Whether a record of ``key`` is in ``tp`` at or after ``offset`` (check, not timing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                if any(r.key == key for r in records):
                    return True
        return False
    finally:
        await consumer.stop()


async def stop(proc: subprocess.Popen[bytes], kill: bool) -> float | None:
    """kill -9 the worker, or SIGTERM it and return how long it took to exit."""
    if kill:
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        return None
    stopping = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(proc.wait, 60)  # else ``process`` kills it on the way out
    return time.monotonic() - stopping


def other_load(progress: Progress, pids: dict[str, int]) -> float:
    """Machine busy time outside ``pids`` from start to done, in % of one core."""
    own = sum(progress.cpu[f"done.{p}"] - progress.cpu[f"start.{p}"] for p in pids)
    busy = progress.busy["done"] - progress.busy["start"]
    assert progress.done is not None
    return 100 * max(0.0, busy - own) / (progress.done - progress.started)


async def start(
    broker: Broker,
    world: World,
    kind: str,
    *,
    kill: bool,
    workdir: Path,
    args: argparse.Namespace,
    broker_pid: int | None,
) -> Start:
    """Append one event, start a worker on the world, time it, stop it (or kill -9 it)."""
    address = await append_event(broker.bootstrap, world)
    names = world.names
    tp = TopicPartition(names.addresses, key_partition(address.encode(), PARTITIONS))
    before = await broker.end_offsets([names.addresses])
    logfile = workdir / f"{names.tag}-{world.starts}.log"
    wall = time.time()
    began = time.monotonic()
    with process(command(names, broker.bootstrap), world.env(broker.bootstrap), logfile) as proc:
        pids = {"worker": proc.pid} | ({"broker": broker_pid} if broker_pid else {})
        progress = await watch(
            broker,
            group=names.group,
            inputs=[names.raw, *names.hops],
            outputs=[names.addresses],
            expected_raw=world.raw,
            pids=pids,
            alive=lambda: proc.poll() is None,
            started=began,
            timeout=args.timeout,
            interval=0.05,
            output_base=sum(before.values()),
        )
        if not await applied_key(broker, tp, before[tp], address.encode()):
            raise RuntimeError(f"{address}: no record in {tp} after offset {before[tp]}")
        await asyncio.sleep(args.idle_seconds)
        mem = memory(proc.pid)
        stop_s = await stop(proc, kill)
    assert progress.first_output is not None
    assert progress.done is not None
    result = Start(
        size=world.size,
        kind=kind,
        applied_s=progress.first_output - began,
        committed_s=progress.done - began,
        cpu_s=progress.cpu["first.worker"] - progress.cpu["start.worker"],
        rss=mem.get("VmRSS", 0),
        peak_rss=mem.get("VmHWM", 0),
        other_load=other_load(progress, pids),
        stopped_by="kill -9" if kill else "SIGTERM",
        stop_s=stop_s,
        phases=read_phases(logfile, wall),
    )
    log(
        f"{world.size:,} {kind}: applied {result.applied_s:.2f}s, committed "
        f"{result.committed_s:.2f}s, RSS {result.rss / 2**20:.0f} MiB "
        f"(peak {result.peak_rss / 2**20:.0f}), other load {result.other_load:.0f} %"
    )
    return result


def plan(worlds: list[World], rounds: int) -> Iterator[tuple[World, str, bool]]:
    """(world, kind, kill -9 it afterwards): sizes interleaved; a kill -9 restart
    straight after the kill, as a supervisor would restart it."""
    for w in worlds:
        yield w, "full restore", False
    for r in range(rounds):
        for w in worlds:
            last = r == rounds - 1
            yield w, "after SIGTERM", last
            if last:
                yield w, "after kill -9", False


async def run(args: argparse.Namespace, kafka: LocalKafka, bench: Bench, workdir: Path) -> None:
    bootstrap = kafka.config.bootstrap
    broker_pid = kafka.running_pid()
    async with Broker(bootstrap) as broker:
        try:
            for size in args.sizes:
                bench.worlds.append(await build(broker, bench, size, workdir))
            bench.load_before = load_average()
            log(f"load average before the starts: {bench.load_before}")
            for world, kind, kill in plan(bench.worlds, args.rounds):
                bench.starts.append(
                    await start(
                        broker,
                        world,
                        kind,
                        kill=kill,
                        workdir=workdir,
                        args=args,
                        broker_pid=broker_pid,
                    )
                )
        finally:
            if not args.keep_topics:
                deleted = await broker.delete_prefixed(prefix(bench))
                log(f"deleted {len(deleted)} topics")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proc_restart", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=2, help="restarts after SIGTERM per size")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="before reading RSS")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per worker start, s")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, help="keep worker logs and data dirs here")
    args = parser.parse_args(argv)
    # The worker reads this config; so do the settings the state is built with.
    os.environ.setdefault("MAILPULSE_CONFIG", CONFIG)

    kafka, ours = ensure_broker()
    note = "started by this run" if ours else "already running, reused"
    bench = Bench(args, f"{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}", note)
    try:
        with tempfile.TemporaryDirectory(prefix="mailpulse-restart-bench-") as tmp:
            asyncio.run(run(args, kafka, bench, args.workdir or Path(tmp)))
            bench.ended = time.monotonic()
            proc_restart_report.write_section(args.out, bench)
            log(f"wrote {args.out}")
    finally:
        if ours:
            kafka.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
