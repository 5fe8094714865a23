"""The hot-key benchmark's results as a BENCHMARKS.md section (replaced on every run)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.procstat import machine
from bench.report import replace_section

if TYPE_CHECKING:
    from bench.proc_hotkey import Bench, HotRun

BEGIN = "<!-- bench.proc_hotkey: begin (generated, do not edit by hand) -->"
END = "<!-- bench.proc_hotkey: end -->"
RATIO_TARGET = 0.5  # hot-key events/s at least this share of spread keys'


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _pairs(bench: Bench) -> list[tuple[HotRun, HotRun]]:
    spread = [r for r in bench.runs if r.kind == "spread"]
    hot = [r for r in bench.runs if r.kind == "hot"]
    return list(zip(spread, hot, strict=False))


def _runs(bench: Bench) -> list[str]:
    out = [
        "| run | keys | raw events/s (first output → all committed) | first → last output "
        "| from process start | worker µs/event | addresses | events counted | commands "
        "| largest table record | other load |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in bench.runs:
        res = r.result
        worker = res.cpu("worker", "first", "done") / res.events * 1e6
        a = r.applied
        out.append(
            f"| {res.names.tag} | {r.kind} | **{r.rate:,.0f}** | {res.rate:,.0f} | "
            f"{res.events / res.total:,.0f} | {worker:,.0f} | {a.addresses:,} | "
            f"{a.counted:,} | {res.counts.get('commands', 0):,} | {a.largest_record:,} B | "
            f"{r.other_load:.0f} % |"
        )
    return out


def _exact(bench: Bench) -> str:
    events = bench.args.events
    wrong = [r.result.names.tag for r in bench.runs if r.applied.counted != events]
    if wrong:
        return f"Counts: **MISMATCH** in {', '.join(wrong)} (expected {events:,} events each)."
    return f"Counts: every run's table counts all {events:,} events exactly once."


def render(bench: Bench) -> str:
    m = machine()
    args = bench.args
    pairs = _pairs(bench)
    per_pair = ", ".join(f"{h.rate / s.rate:.2f}" for s, h in pairs)
    ratio = bench.ratio()
    minutes = (bench.ended - bench.began) / 60
    types = ", ".join(f"{k} {v:,}" for k, v in sorted(bench.types.items(), key=lambda t: -t[1]))
    out = [
        "## Processors: one hot address against spread addresses",
        "",
        "Run: `.venv/bin/python -m bench.proc_hotkey` (reuses a running `localkafka` broker, "
        "starts one otherwise; `--help` lists the knobs). It rewrites this section. This run "
        f"took {minutes:.0f} minutes.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['implementation']} {m['python']}, "
        f"Linux {m['kernel']}. Run `{bench.run_id}`. Broker: {bench.broker_note}. "
        f"Load average (1, 5, 15 min) before the first run: {bench.load_before}.",
        "",
        f"Input: {args.events:,} NexusProMail webhooks appended to a raw topic (6 partitions) "
        "exactly as ingest appends them (key = source + body hash, partition by key), twice: "
        f"*spread*, each event for its own address ({args.events:,} addresses), and *hot*, "
        "every event for one address. Same event types, distinct provider event ids, event "
        "times inside 20 hours (so inside the 48 h dedupe window: every id stays "
        "remembered), one message id per event, same order; no retries. Types: "
        f"{types}.",
        "",
        "Method: each run is a fresh `python -m processors worker` (RocksDB, default "
        "settings, own consumer group, changelogs and data dir, log level warning), "
        "interleaved spread, hot, spread, hot, timed from outside like "
        "`bench.processors_throughput` (`bench.proc_runs.timed_run`). Rate = raw events / "
        "time from the first output record (start-up done, first event normalised) until "
        "the group has committed the raw topic and both hops to their ends. Counts and "
        "sizes read back from the `addresses` changelog (latest record per key). *Other "
        "load* = machine busy time outside worker and broker, % of one core.",
        "",
        "### Target (ratio measured in this run)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| hot-key events/s >= {RATIO_TARGET}x spread keys' | **{ratio:.2f}x** "
        f"(means {sum(bench.rates('hot')) / len(bench.rates('hot')):,.0f} vs "
        f"{sum(bench.rates('spread')) / len(bench.rates('spread')):,.0f} events/s; per pair "
        f"{per_pair}) | {_verdict(ratio >= RATIO_TARGET)} |",
        "",
        "### Runs",
        "",
        *_runs(bench),
        "",
        _exact(bench),
        "",
        f"Arguments: `--events {args.events}`, `--reps {args.reps}`, `--seed {args.seed}`.",
    ]
    return "\n".join(out).rstrip() + "\n"


def write_section(path: Path, bench: Bench) -> None:
    """Replace this benchmark's section of ``path``, creating the file if needed."""
    replace_section(path, BEGIN, END, render(bench))
