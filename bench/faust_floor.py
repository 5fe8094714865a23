"""What a Faust stream costs per record before any work is done: the floor under the
Faust pipeline's cost per raw event, against a bare aiokafka consumer on the same topic.

``python -m bench.faust_floor`` (about 3 minutes; reuses a running ``localkafka`` broker,
starts one otherwise) preloads the throughput benchmark's raw records into a fresh
6-partition topic, then runs each reader in a process of its own, interleaved:

* **aiokafka**: ``AIOKafkaConsumer.getmany`` in a loop, counting records, offsets
  committed after each batch (what the plain loop's consumer side costs);
* **faust**: a Faust agent over the topic whose body does nothing (``async for event in
  stream.events(): n += 1``), Faust's own acks and commits, with the worker's consumer
  settings (processors/app.py);
* **... + work**: each of them again with ``WORK_US`` of CPU spent on every record (a
  busy loop standing for a pipeline's own work). An idle Faust agent waits for each record
  (the stream's slow path: futures and a wake-up per record); a busy one finds the next
  records queued. Its cost per record minus ``WORK_US`` is what Faust adds under a backlog.

Each reader times itself from its first record to its last and takes the process's CPU
(every thread: Faust's consumer runs in a thread of its own) over the same span. It
rewrites the ``bench.faust_floor`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from bench.proc_kafka import Broker
from bench.proc_workload import generate, preload
from bench.report import replace_section
from bench.topics import delete_topics, ensure_broker

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 6
READERS = ("aiokafka", "faust", "aiokafka + work", "faust + work")
WORK_US = 250.0  # about what the worker's own step costs per raw event (BENCHMARKS.md)
MARK = "faust_floor: "  # the reader's result line (Faust prints its banner on stdout too)
BEGIN = "<!-- bench.faust_floor: begin (generated, do not edit by hand) -->"
END = "<!-- bench.faust_floor: end -->"


def spin(us: float) -> None:
    """Spend ``us`` microseconds of CPU (a busy loop)."""
    end = time.process_time() + us / 1e6
    while time.process_time() < end:
        pass


QUIET_S = 10.0  # a reader that got nothing for this long is done, whatever it counted


@dataclass
class Tally:
    """Records seen, and the clocks at the first and the latest."""

    count: int = 0
    first: float = 0.0
    cpu_first: float = 0.0
    last: float = 0.0
    cpu_last: float = 0.0

    def seen(self, n: int = 1, work_us: float = 0.0) -> None:
        if work_us:
            spin(n * work_us)
        now, cpu = time.monotonic(), time.process_time()
        if self.count == 0:
            self.first, self.cpu_first = now, cpu
        self.count += n
        self.last, self.cpu_last = now, cpu

    def report(self) -> None:
        """The reader's line on stdout: records, seconds and CPU-µs per record, first to
        last record."""
        span = max(self.count - 1, 1)
        line = {
            "records": self.count,
            "seconds": self.last - self.first,
            "cpu_us": (self.cpu_last - self.cpu_first) * 1e6 / span,
        }
        print(MARK + json.dumps(line), flush=True)

    async def report_when_done(self, total: int) -> None:
        """Report once ``total`` records came, or nothing came for ``QUIET_S``: a Faust
        stream can drop records at its start that it never fetches again."""
        while self.count < total and (self.count == 0 or time.monotonic() - self.last < QUIET_S):
            await asyncio.sleep(0.5)
        self.report()


async def read_aiokafka(bootstrap: str, topic: str, total: int, work_us: float) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"floor-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    tally = Tally()
    try:
        while tally.count < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batches.values():
                tally.seen(len(records), work_us)
            if batches:
                await consumer.commit()
        tally.report()
    finally:
        await consumer.stop()


def read_faust(bootstrap: str, topic: str, total: int, work_us: float, datadir: str) -> None:
    import faust
    import mode.loop

    mode.loop.use("uvloop")  # as the worker runs (processors/__main__.py)

    app = faust.App(
        f"floor-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        table_standby_replicas=0,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")
    tally = Tally()

    @app.agent(source)
    async def floor(stream: faust.StreamT[bytes]) -> None:
        async for _event in stream.events():
            tally.seen(1, work_us)

    async def done() -> None:
        await tally.report_when_done(total)

    app.task(done)

    app.finalize()
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def run_reader(reader: str, bootstrap: str, topic: str, total: int, workdir: Path) -> Any:
    """One reader in a process of its own; its line once it has read ``total`` records."""
    args = [sys.executable, "-m", "bench.faust_floor", "--read", reader, "--topic", topic]
    args += ["--bootstrap", bootstrap, "--events", str(total), "--datadir", str(workdir)]
    with subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        try:
            # Faust's spinner may put terminal codes before it on the same line.
            line = next((x.split(MARK, 1)[1] for x in proc.stdout if MARK in x), None)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    if line is None:
        raise RuntimeError(f"{reader} ended without reading {total} records")
    return json.loads(line)


def render(total: int, rows: list[tuple[str, str, dict[str, float]]], started: str) -> str:
    by_reader: dict[str, list[dict[str, float]]] = {}
    for _, reader, result in rows:
        by_reader.setdefault(reader, []).append(result)

    def mean(reader: str, key: str) -> float:
        values = [r[key] for r in by_reader[reader]]
        return sum(values) / len(values)

    lines = [
        "## Faust's floor: a stream that does nothing, against a bare aiokafka consumer",
        "",
        "Run: `.venv/bin/python -m bench.faust_floor` (about 3 minutes; reuses a running "
        "`localkafka` broker). It rewrites this section.",
        "",
        f"Run {started}: {total:,} raw records of the throughput benchmark's workload "
        f"in one {PARTITIONS}-partition topic; readers interleaved, each in its own "
        "process, timed and CPU-measured (all threads) from its first record to its last.",
        "",
        "| run | reader | records reaching the loop | records/s | CPU µs/record |",
        "|---|---|--:|--:|--:|",
    ]
    for tag, reader, result in rows:
        rate = (result["records"] - 1) / max(result["seconds"], 1e-9)
        cells = f"{result['records']:,} | {rate:,.0f} | {result['cpu_us']:.0f}"
        lines.append(f"| {tag} | {reader} | {cells} |")
    lines += [
        "",
        f'Machinery = CPU per record minus the work ({WORK_US:.0f} µs for the "+ work" '
        "readers); Faust's share = Faust's machinery minus aiokafka's with the same work.",
        "",
        "| reader | mean CPU µs/record | machinery µs/record | Faust's share µs/record |",
        "|---|--:|--:|--:|",
    ]
    for reader in READERS:
        work = WORK_US if reader.endswith("+ work") else 0.0
        machinery = mean(reader, "cpu_us") - work
        bare = mean(reader.replace("faust", "aiokafka"), "cpu_us") - work
        share = f"{machinery - bare:.0f}" if reader.startswith("faust") else ""
        lines.append(f"| {reader} | {mean(reader, 'cpu_us'):.0f} | {machinery:.0f} | {share} |")
    return "\n".join(lines) + "\n"


async def preload_topic(bootstrap: str, topic: str, total: int) -> None:
    async with Broker(bootstrap) as broker:
        await broker.create([topic], PARTITIONS)
    await preload(bootstrap, topic, generate(total, PARTITIONS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--read", choices=READERS, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--datadir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read is not None:
        work_us = WORK_US if args.read.endswith("+ work") else 0.0
        if args.read.startswith("aiokafka"):
            uvloop.run(read_aiokafka(args.bootstrap, args.topic, args.events, work_us))
        else:
            read_faust(args.bootstrap, args.topic, args.events, work_us, args.datadir)
        return

    ensure_broker()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    topic = f"floor-{uuid.uuid4().hex[:8]}.webhooks.raw"
    workdir = REPO / "var" / "bench" / "faust_floor"
    workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(preload_topic(args.bootstrap, topic, args.events))
    rows = []
    try:
        for round_ in range(1, args.rounds + 1):
            for reader in READERS:
                result = run_reader(reader, args.bootstrap, topic, args.events, workdir)
                rows.append((f"r{round_}", reader, result))
                print(reader, result, flush=True)
    finally:
        delete_topics(args.bootstrap, [topic])
    section = render(args.events, rows, started)
    print(section)
    replace_section(REPO / "BENCHMARKS.md", BEGIN, END, section)


if __name__ == "__main__":
    main()
