"""Processors throughput: the Faust pipeline against a plain aiokafka loop on the same input.

``python -m bench.processors_throughput [--events N] [--quix]`` preloads a raw topic (6
partitions, unique prefix) with N seeded NexusProMail webhooks, then runs, interleaved, the
pure step on the same records in this process (P, ``bench/proc_pure.py``: no Kafka), the
plain loop (B) and one Faust worker (A): P, B, A, P, B, A; with ``--quix`` also the Quix
Streams peer (C, ``bench/proc_quix.py``) before each A. Each pipeline run reads the same
raw topic with its own consumer group and output topics and is timed from outside: from
process start, and from its first output record to its last, until its group committed
every input topic to its end offsets. Then event-to-command latency on the last
(caught-up) Faust worker at half the measured Faust rate, a short cProfile of a worker,
and its section of ``BENCHMARKS.md``. Needs the local broker (reused if running).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import proc_report
from bench.proc_kafka import Broker
from bench.proc_latency import Latency, measure
from bench.proc_profile import ProfileRun, profile_worker
from bench.proc_pure import PureRun, run_pure
from bench.proc_runs import CONFIG, PARTITIONS, Names, RunResult, quix_internal_prefixes, timed_run
from bench.proc_workload import expected, generate, preload
from localkafka.broker import Broker as LocalKafka
from processors.settings import load_settings

RESULTS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


@dataclass
class Bench:
    """Everything one invocation measured; the report is written from this."""

    args: argparse.Namespace
    run_id: str
    broker_note: str
    input: dict[str, int] = field(default_factory=dict)
    preload_s: float = 0.0
    runs: list[RunResult] = field(default_factory=list)
    pure: list[PureRun] = field(default_factory=list)
    latency: Latency | None = None
    profile: ProfileRun | None = None
    began: float = field(default_factory=time.monotonic)

    def faust_rate(self, current: RunResult) -> float:
        """Mean Faust rate over the finished runs and ``current`` (not yet in ``runs``)."""
        runs = [*self.runs, current]
        return statistics.mean(r.rate for r in runs if r.names.kind == "faust")


def ensure_broker() -> tuple[LocalKafka, bool]:
    """Reuse the running local broker; start one if none runs (True: we started it)."""
    kafka = LocalKafka()
    if kafka.is_ready():  # ours or another checkout's: reuse it, never stop it
        return kafka, False
    kafka.start()
    return kafka, True


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def describe(r: RunResult) -> str:
    return (
        f"{r.names.kind} {r.names.tag}: {r.rate:,.0f} raw/s over {r.span:.1f}s "
        f"(from start {r.events / r.total:,.0f}/s in {r.total:.1f}s), "
        f"CPU {r.cpu('worker') / r.events * 1e6:.0f} µs/event "
        f"({r.cpu('worker.sys') / max(r.cpu('worker'), 1e-9):.0%} system), "
        + (
            f"broker {r.cpu('broker') / r.events * 1e6:.0f} µs/event; "
            if "first.broker" in r.progress.cpu
            else ""
        )
        + f"counts {r.counts}"
    )


def run_names(kind: str, base: str, raw: str, rep: int) -> Names:
    """Topics and group of the ``rep``-th run of ``kind``: Faust a1, plain b1, Quix c1, ..."""
    if kind == "faust":
        return Names.faust(base, raw, f"a{rep}")
    if kind == "quix":
        return Names.quix(base, raw, f"c{rep}")
    return Names.plain(base, raw, f"b{rep}")


async def run(args: argparse.Namespace, kafka: LocalKafka, bench: Bench, workdir: Path) -> None:
    bootstrap = kafka.config.bootstrap
    base = f"bench-proc-{bench.run_id}."
    raw = f"{base}webhooks.raw"
    broker_pid = kafka.running_pid()
    async with Broker(bootstrap) as broker:
        try:
            records = generate(args.events, PARTITIONS, args.seed)
            bench.input = expected(records)
            await broker.create([raw], PARTITIONS)
            began = time.monotonic()
            await preload(bootstrap, raw, records)
            bench.preload_s = time.monotonic() - began
            log(f"preloaded {bench.input} into {raw} in {bench.preload_s:.1f}s")
            os.environ["MAILPULSE_CONFIG"] = CONFIG  # the policy the pipelines apply
            settings = load_settings()

            # Faust last in each round: the latency measurement appends records to the
            # shared raw topic while the last Faust run is up, and no run may follow it.
            kinds = ["pure", "plain", *(["quix"] if args.quix else []), "faust"]
            order = kinds * args.reps
            last_faust = len(order) - 1 - order[::-1].index("faust") if order else -1

            async def latency(result: RunResult) -> None:
                rate = args.latency_rate or args.latency_share * bench.faust_rate(result)
                log(f"latency: {rate:,.0f} hard bounces/s for {args.latency_seconds:.0f}s")
                bench.latency = await measure(
                    broker,
                    raw,
                    result.names.commands,
                    rate=rate,
                    seconds=args.latency_seconds,
                    tag=bench.run_id,
                    partitions=PARTITIONS,
                )

            for i, kind in enumerate(order):
                rep = i // len(kinds) + 1
                if kind == "pure":
                    pure = await asyncio.to_thread(run_pure, f"p{rep}", records, settings)
                    bench.pure.append(pure)
                    log(
                        f"pure {pure.tag}: {pure.rate:,.0f} raw/s over {pure.seconds:.1f}s, "
                        f"CPU {pure.cpu / pure.events * 1e6:.0f} µs/event"
                    )
                    continue
                names = run_names(kind, base, raw, rep=rep)
                up = latency if i == last_faust and args.latency_seconds > 0 else None
                result = await timed_run(
                    broker,
                    names,
                    args.events,
                    workdir / names.tag,
                    broker_pid=broker_pid,
                    timeout=args.timeout,
                    while_up=up,
                )
                bench.runs.append(result)
                log(describe(result))
            if args.profile_seconds > 0:
                names = Names.faust(base, raw, "prof")
                bench.profile = await profile_worker(
                    broker, names, workdir / "prof", seconds=args.profile_seconds
                )
                log(f"profile: {bench.profile.events:,} events in {bench.profile.seconds:.1f}s")
        finally:
            if not args.keep_topics:
                # Faust and Quix name their internal topics after the group
                # (bench-proc-<run id>-a1-g1-..., repartition__bench-proc-<run id>-c1--...).
                groups = base.replace(".", "-")
                prefixes = [base, groups, *quix_internal_prefixes(groups)]
                for prefix in prefixes:
                    deleted = await broker.delete_prefixed(prefix)
                    log(f"deleted {len(deleted)} topics {prefix}*")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.processors_throughput", description=__doc__
    )
    parser.add_argument("--events", type=int, default=200_000, help="raw records (default 200000)")
    parser.add_argument("--reps", type=int, default=2, help="B,A(,C) rounds (default 2)")
    parser.add_argument(
        "--quix", action="store_true", help="also run the Quix Streams peer (C) each round"
    )
    parser.add_argument("--seed", type=int, default=20260513)
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--latency-seconds", type=float, default=25.0, help="0 = skip")
    parser.add_argument("--latency-share", type=float, default=0.5, help="x Faust throughput")
    parser.add_argument(
        "--latency-rate", type=float, default=0.0, help="events/s, overrides --latency-share"
    )
    parser.add_argument("--profile-seconds", type=float, default=20.0, help="0 = skip")
    parser.add_argument("--keep-topics", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, help="keep worker logs/profiles here")
    args = parser.parse_args(argv)

    kafka, ours = ensure_broker()
    note = "started by this run" if ours else "already running, reused"
    bench = Bench(args, f"{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}", note)
    try:
        with tempfile.TemporaryDirectory(prefix="mailpulse-proc-bench-") as tmp:
            asyncio.run(run(args, kafka, bench, args.workdir or Path(tmp)))
            proc_report.write_section(args.out, bench, kafka)
            log(f"wrote {args.out}")
    finally:
        if ours:
            kafka.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
