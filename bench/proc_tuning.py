"""Which worker settings matter for throughput: the same input, one setting changed at a time.

``python -m bench.proc_tuning [--events N] [--reps R]`` preloads a raw topic with N seeded
NexusProMail webhooks (the input of ``bench.processors_throughput``), then runs fresh
Faust workers (``python -m processors worker``, each its own group, topics and data dir)
over it: the shipped defaults, then each variant below, round after round, so every
variant sits between default runs of the same minutes. Each run is timed from outside
(``bench.proc_runs.timed_run``) and must end with the tables and commands of the first
default run, byte for byte. Then its section of ``BENCHMARKS.md``. Needs the local
broker (reused if running); the run's topics are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.proc_kafka import Broker
from bench.proc_runs import PARTITIONS, Names, RunResult, timed_run
from bench.proc_workload import generate, preload
from bench.procstat import machine
from bench.report import replace_section
from localkafka.broker import Broker as LocalKafka

RESULTS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
BEGIN = "<!-- bench.proc_tuning: begin (generated, do not edit by hand) -->"
END = "<!-- bench.proc_tuning: end -->"
P = "MAILPULSE_PROCESSORS__"


@dataclass(frozen=True)
class Variant:
    name: str
    what: str  # what the change does, for the report
    env: dict[str, str]
    workers: int = 1


VARIANTS = [
    Variant("default", "the shipped settings", {}),
    Variant(
        "no hop batches",
        "`hop_batch_max_records = 1`: each raw record's events sent at once, one hop "
        "record per partition per raw record (one per event here), as before batches",
        {f"{P}HOP_BATCH_MAX_RECORDS": "1"},
    ),
    Variant(
        "small hop batches",
        "`hop_batch_max_records = 20` (default 500)",
        {f"{P}HOP_BATCH_MAX_RECORDS": "20"},
    ),
    Variant(
        "short hop linger",
        "`hop_batch_linger_s = 0.005` (default 0.05)",
        {f"{P}HOP_BATCH_LINGER_S": "0.005"},
    ),
    Variant(
        "long hop linger",
        "`hop_batch_linger_s = 0.2`: under a backlog, batches up to 500 raw records",
        {f"{P}HOP_BATCH_LINGER_S": "0.2"},
    ),
    Variant(
        "longer hop linger, bigger batches",
        "`hop_batch_linger_s = 0.5`, `hop_batch_max_records = 2000`",
        {f"{P}HOP_BATCH_LINGER_S": "0.5", f"{P}HOP_BATCH_MAX_RECORDS": "2000"},
    ),
    Variant(
        "two workers",
        "two workers in one group on this machine (3 of the 6 partitions each); worker "
        "µs/event is both together",
        {},
        workers=2,
    ),
    Variant(
        "no producer linger",
        "`producer_linger_s = 0` (default 0.005)",
        {f"{P}PRODUCER_LINGER_S": "0"},
    ),
    Variant(
        "long producer linger",
        "`producer_linger_s = 0.02`",
        {f"{P}PRODUCER_LINGER_S": "0.02"},
    ),
]


@dataclass
class Bench:
    args: argparse.Namespace
    run_id: str
    runs: list[tuple[Variant, RunResult]] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


async def run(
    args: argparse.Namespace, bench: Bench, workdir: Path, broker_pid: int | None
) -> None:
    bootstrap = LocalKafka().config.bootstrap
    base = f"bench-tune-{bench.run_id}."
    raw = f"{base}webhooks.raw"
    chosen = [v for v in VARIANTS if v.name == "default" or not args.only or v.name in args.only]
    async with Broker(bootstrap) as broker:
        try:
            await broker.create([raw], PARTITIONS)
            await preload(bootstrap, raw, generate(args.events, PARTITIONS, args.seed))
            log(f"preloaded {args.events:,} records into {raw}")
            for rep in range(1, args.reps + 1):
                for n, variant in enumerate(chosen):
                    names = Names.faust(base, raw, f"r{rep}v{n}")
                    result = await timed_run(
                        broker,
                        names,
                        args.events,
                        workdir / names.tag,
                        broker_pid=broker_pid,
                        timeout=args.timeout,
                        extra_env=variant.env,
                        workers=variant.workers,
                    )
                    bench.runs.append((variant, result))
                    log(
                        f"{variant.name} ({names.tag}): {result.rate:,.0f} raw/s, worker "
                        f"{result.cpu('worker') / result.events * 1e6:,.0f} µs/event, "
                        f"hop records {_hop_records(result):,}"
                    )
        finally:
            for prefix in (base, base.replace(".", "-")):
                deleted = await broker.delete_prefixed(prefix)
                log(f"deleted {len(deleted)} topics {prefix}*")


def _hop_records(r: RunResult) -> int:
    return sum(n for k, n in r.counts.items() if k.endswith(("email.events", "message.events")))


def render(bench: Bench) -> str:
    m = machine()
    first = bench.runs[0][1]
    defaults = [r for v, r in bench.runs if v.name == "default"]
    base_rate = statistics.mean(r.rate for r in defaults)
    base_cpu = statistics.mean(r.cpu("worker") / r.events for r in defaults)
    out = [
        "## Processors: which settings matter for throughput",
        "",
        "Run: `.venv/bin/python -m bench.proc_tuning` (reuses a running `localkafka` broker). "
        "It rewrites this section.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['implementation']} {m['python']}. "
        f"Run `{bench.run_id}`. Input: {bench.args.events:,} NexusProMail webhooks (the "
        "input of the throughput benchmark), preloaded. Each run is a fresh worker with its "
        "own group and data dir, timed from outside like the throughput benchmark; the "
        "variants run round after round between default runs, and every run must end with "
        "the tables and commands of the first, byte for byte.",
        "",
        "| setting changed | runs | raw events/s | vs default | worker µs/event | vs default "
        "| hop records | same answer |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for variant in VARIANTS:
        runs = [r for v, r in bench.runs if v is variant]
        if not runs:
            continue
        rate = statistics.mean(r.rate for r in runs)
        cpu = statistics.mean(r.cpu("worker") / r.events for r in runs)
        same = all(r.finals == first.finals for r in runs)
        out.append(
            f"| {variant.name}: {variant.what} | {len(runs)} | **{rate:,.0f}** | "
            f"{rate / base_rate:.2f}x | {cpu * 1e6:,.0f} | {cpu / base_cpu:.2f}x | "
            f"{statistics.mean(_hop_records(r) for r in runs):,.0f} | "
            f"{'yes' if same else '**no**'} |"
        )
    knobs = (
        f"`--events {bench.args.events}`, `--reps {bench.args.reps}`, `--seed {bench.args.seed}`"
    )
    out += ["", f"Arguments: {knobs}."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proc_tuning", description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20260513)
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--only", nargs="*", help="variant names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    kafka = LocalKafka()
    if not kafka.is_ready():
        print("start the local broker first: ./dev kafka start", file=sys.stderr)
        return 2
    bench = Bench(args, f"{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}")
    with tempfile.TemporaryDirectory(prefix="mailpulse-tuning-") as tmp:
        asyncio.run(run(args, bench, args.workdir or Path(tmp), kafka.running_pid()))
    replace_section(args.out, BEGIN, END, render(bench))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
