"""The processors benchmark's results as a BENCHMARKS.md section (replaced on every run)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from bench.proc_runs import RunResult
from bench.procstat import machine
from bench.report import replace_section

if TYPE_CHECKING:
    from bench.processors_throughput import Bench
    from localkafka.broker import Broker as LocalKafka

BEGIN = "<!-- bench.processors_throughput: begin (generated, do not edit by hand) -->"
END = "<!-- bench.processors_throughput: end -->"
THROUGHPUT_TARGET = 0.6  # Faust events/s at least this share of the plain loop's
LATENCY_TARGET_S = 0.25  # event-to-command p99 at half the Faust rate
QUIX_TARGET = 1.5  # Faust events/s at least this multiple of the Quix Streams peer's
PURE_TARGET = 0.3  # Faust events/s at least this share of the pure step's own rate
TABLES = ("addresses", "messages", "commands")


def _other_load(r: RunResult) -> float:
    """Machine busy time outside worker and broker during the run, in % of one core."""
    own = r.cpu("worker") + (r.cpu("broker") if "first.broker" in r.progress.cpu else 0.0)
    return 100 * max(0.0, r.busy() - own) / r.span


def _pairs(runs: list[RunResult]) -> list[tuple[RunResult, RunResult]]:
    """(plain, faust) runs in the order they ran: B1 A1, B2 A2, ..."""
    plain = [r for r in runs if r.names.kind == "plain"]
    faust = [r for r in runs if r.names.kind == "faust"]
    return list(zip(plain, faust, strict=False))


def _same_state(a: RunResult, b: RunResult) -> list[str]:
    """The tables on which two runs' final states differ (byte for byte, per key)."""
    return [t for t in TABLES if a.finals.get(t) != b.finals.get(t)]


def _quix(runs: list[RunResult]) -> tuple[list[str], list[str]]:
    """The Quix Streams peer's sentence in the method and its target row (none: not run)."""
    quix = [r for r in runs if r.names.kind == "quix"]
    faust = [r for r in runs if r.names.kind == "faust"]
    if not quix or not faust:
        return [], []
    ratio = statistics.mean(r.rate for r in faust) / statistics.mean(r.rate for r in quix)
    method = [
        "**Quix Streams (C)**: `bench/proc_quix.py`, the same normalise and pure transitions "
        "on Quix Streams (confluent-kafka): `group_by` by address and by message id through "
        "Quix's repartition topics, state and dedupe index in Quix's RocksDB `State` "
        "(changelog per changed key per checkpoint, every 5 s), the plain loop's output "
        "topics. Its changelog records are counted, not timed.",
        "",
    ]
    target = [
        f"| Faust >= {QUIX_TARGET}x Quix Streams' events/s | **{ratio:.2f}x** | "
        f"{_verdict(ratio >= QUIX_TARGET)} |"
    ]
    return method, target


def _pure(bench: Bench) -> tuple[list[str], list[str], list[str]]:
    """The pure step's sentence in the method, its target row and its runs table."""
    faust = [r for r in bench.runs if r.names.kind == "faust"]
    if not bench.pure or not faust:
        return [], [], []
    ratio = statistics.mean(r.rate for r in faust) / statistics.mean(p.rate for p in bench.pure)
    method = [
        "**Pure step (P)**: `bench/proc_pure.py`, in the benchmark's own process on the same "
        "records, no Kafka: `normalise`, then each event folded into its address and message "
        "with the stored state parsed from JSON and the new one serialised, dedupe index in "
        "memory. What a pipeline spends beyond it is machinery.",
        "",
    ]
    target = [
        f"| Faust >= {PURE_TARGET}x the pure step's events/s | **{ratio:.2f}x** | "
        f"{_verdict(ratio >= PURE_TARGET)} |"
    ]
    table = [
        "Pure step runs (no Kafka):",
        "",
        "| run | raw events/s | CPU µs/event |",
        "|---|--:|--:|",
        *(f"| {r.tag} | **{r.rate:,.0f}** | {r.cpu / r.events * 1e6:,.0f} |" for r in bench.pure),
        "",
    ]
    return method, target, table


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.0f}"


def _runs_table(runs: list[RunResult]) -> list[str]:
    out = [
        "| run | pipeline | raw events/s (first→last output) | from process start | "
        "worker µs/event | worker system share | broker µs/event | other load |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in runs:
        broker = r.cpu("broker") / r.events * 1e6 if "first.broker" in r.progress.cpu else None
        worker = r.cpu("worker")
        out.append(
            f"| {r.names.tag} | {r.names.kind} | **{r.rate:,.0f}** | {r.events / r.total:,.0f} | "
            f"{worker / r.events * 1e6:,.0f} | {r.cpu('worker.sys') / max(worker, 1e-9):.0%} | "
            f"{'n/a' if broker is None else f'{broker:,.0f}'} | {_other_load(r):.0f} % |"
        )
    return out


def _counts_table(bench: Bench) -> list[str]:
    out = [
        "| run | addresses: keys (records) | messages: keys (records) | "
        "commands: addresses (records) | other topics (records) |",
        "|---|--:|--:|--:|---|",
    ]
    for r in bench.runs:
        cells = [f"{len(r.finals.get(t, {})):,} ({r.counts.get(t, 0):,})" for t in TABLES]
        others = ", ".join(f"{k} {v:,}" for k, v in sorted(r.counts.items()) if k not in TABLES)
        out.append(f"| {r.names.tag} | {' | '.join(cells)} | {others or '—'} |")
    return out


def _latency(bench: Bench) -> list[str]:
    lat = bench.latency
    if lat is None:
        return ["Latency was not measured in this run (`--latency-seconds 0`)."]
    p99 = lat.pct(99)
    lag = lat.pct(99, lat.send_lag)
    return [
        f"Open loop: {lat.rate:,.0f} hard bounces/s (half the mean Faust rate) for "
        f"{lat.seconds:.0f} s into the caught-up worker of the last Faust run, each to a new "
        "address, appended to the raw topic like ingest does; latency = arrival of the "
        "address's suppression command (plain aiokafka consumer) minus the event's "
        "*scheduled* send time.",
        "",
        "| sent | commands received | p50 ms | p90 ms | p99 ms | max ms | sender lag p99 ms |",
        "|--:|--:|--:|--:|--:|--:|--:|",
        f"| {lat.sent:,} | {lat.received:,} | {_ms(lat.pct(50))} | {_ms(lat.pct(90))} | "
        f"**{_ms(p99)}** | {_ms(lat.pct(100))} | {_ms(lag)} |",
    ]


def _profile(bench: Bench) -> list[str]:
    prof = bench.profile
    if prof is None:
        return []
    out = ["", "### Where the Faust worker's CPU goes", ""]
    if prof.error:
        return [*out, f"No profile: {prof.error}."]
    per_event = prof.cpu / prof.events * 1e6 if prof.events else float("nan")
    out += [
        f"cProfile on the thread CPU clock, {prof.seconds:.0f} s of a fresh worker on the "
        f"same input: {prof.events:,} raw events normalised, {per_event:,.0f} CPU-µs per "
        "event under the profiler (inflated by it). Own time by package:",
        "",
        "| where | share of own time |",
        "|---|--:|",
    ]
    out += [f"| {name} | {t / prof.total:.0%} |" for name, t in prof.groups[:12]]
    out += ["", "Top functions by own time:", "", "| function | share |", "|---|--:|"]
    out += [f"| `{name}` | {t / prof.total:.1%} |" for name, t in prof.functions[:12]]
    return out


def render(bench: Bench, kafka: LocalKafka) -> str:
    m = machine()
    args = bench.args
    pairs = _pairs(bench.runs)
    ratios = [f.rate / p.rate for p, f in pairs]
    faust = [r for r in bench.runs if r.names.kind == "faust"]
    plain = [r for r in bench.runs if r.names.kind == "plain"]
    ratio = statistics.mean(r.rate for r in faust) / statistics.mean(r.rate for r in plain)
    p99 = bench.latency.pct(99) if bench.latency else float("nan")
    lost = bench.latency is not None and bench.latency.received < bench.latency.sent
    diffs = [(r.names.tag, _same_state(bench.runs[0], r)) for r in bench.runs[1:]]
    quix_method, quix_target = _quix(bench.runs)
    pure_method, pure_target, pure_table = _pure(bench)
    out = [
        "## Processors throughput: Faust pipeline vs a plain aiokafka loop",
        "",
        "Run: `.venv/bin/python -m bench.processors_throughput` (about 20 minutes with the "
        "default 200,000 events; reuses a running `localkafka` broker, starts one otherwise; "
        "`--help` lists the knobs). It rewrites this section.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['implementation']} {m['python']}, "
        f"Linux {m['kernel']}. Run `{bench.run_id}`, {bench.run_id[:4]}-{bench.run_id[4:6]}-"
        f"{bench.run_id[6:8]}. Broker: Kafka {kafka.config.version} (localkafka, "
        f"{kafka.config.bootstrap}), {bench.broker_note}.",
        "",
        f"Input: {bench.input.get('records', 0):,} signed NexusProMail webhooks preloaded "
        f"into one raw topic (6 partitions) in {bench.preload_s:.1f} s: "
        f"{bench.input.get('distinct_events', 0):,} distinct events (the rest are provider "
        f"retries) over {bench.input.get('addresses', 0):,} addresses, a mix of deliveries, "
        "opens, clicks, soft and hard bounces, complaints and unsubscribes.",
        "",
        "Method: each pipeline run is its own process reading the same raw topic with its "
        "own consumer group and output topics, interleaved "
        f"{'pure, ' if pure_method else ''}plain, {'Quix, ' if quix_method else ''}Faust, "
        f"{'pure, ' if pure_method else ''}plain, {'Quix, ' if quix_method else ''}Faust. "
        "**Faust (A)**: `python -m processors worker` as shipped (RocksDB, normaliser → "
        "email.events/message.events → address and message agents, command ack before the "
        "changelog write, an event acked once its changelog record is). **Plain loop (B)**: "
        "`bench/proc_plain.py`, one aiokafka consumer of the raw topic → the same "
        "`normalise` and pure transitions → produce "
        "state records and commands (acks=all), state in a dict, offsets committed after "
        "the batch's produce acks. Rate = raw records / time from the first output record "
        "to the last; a run ends when its group has committed every input topic to its "
        "end. CPU from /proc of the process (broker: the Kafka JVM); *other load* = machine "
        "busy time outside worker and broker, the noise indicator.",
        "",
        *pure_method,
        *quix_method,
        "### Targets (ratios measured in this run)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| Faust >= {THROUGHPUT_TARGET}x the plain loop's events/s | **{ratio:.2f}x** "
        f"(per pair {', '.join(f'{x:.2f}' for x in ratios)}) | "
        f"{_verdict(ratio >= THROUGHPUT_TARGET)} |",
        f"| event-to-command p99 <= {_ms(LATENCY_TARGET_S)} ms at half the Faust rate | "
        f"**{_ms(p99)} ms**{' (commands missing!)' if lost else ''} | "
        f"{_verdict(not math.isnan(p99) and p99 <= LATENCY_TARGET_S and not lost)} |",
        *quix_target,
        *pure_target,
        "",
        "### Runs",
        "",
        *pure_table,
        *_runs_table(bench.runs),
        "",
        "### Same answer",
        "",
        "Final state of every run, latest record per key of its state and command topics, "
        "hashed and compared byte for byte with the first run:",
        "",
    ]
    for tag, differs in diffs:
        result = "identical" if not differs else f"**differs** on {', '.join(differs)}"
        out.append(f"- {tag} vs {bench.runs[0].names.tag}: {result}")
    out += ["", *_counts_table(bench), "", "### Event-to-command latency", "", *_latency(bench)]
    out += _profile(bench)
    knobs = ("events", "reps", "seed", "latency_seconds", "latency_share", "profile_seconds")
    used = ", ".join(f"`--{k.replace('_', '-')} {getattr(args, k)}`" for k in knobs)
    used += ", `--quix`" if getattr(args, "quix", False) else ""
    out += ["", f"Arguments: {used}."]
    return "\n".join(out).rstrip() + "\n"


def write_section(path: Path, bench: Bench, kafka: LocalKafka) -> None:
    """Replace this benchmark's section of ``path``, creating the file if needed."""
    replace_section(path, BEGIN, END, render(bench, kafka))
