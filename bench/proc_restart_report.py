"""The restart benchmark's results as a BENCHMARKS.md section (replaced on every run)."""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from bench.procstat import machine
from bench.report import replace_section

if TYPE_CHECKING:
    from bench.proc_restart import Bench, Start

BEGIN = "<!-- bench.proc_restart: begin (generated, do not edit by hand) -->"
END = "<!-- bench.proc_restart: end -->"
RESTART_RATIO_TARGET = 1.5  # restart at the large size <= this x the small size's
RESTART_TARGET_S = 30.0
RSS_RATIO_TARGET = 1.5
# Worker log events that mark a start's phases (first occurrence), in order.
PHASES = {
    "generation": "topics checked",
    "[^QuietWorker]: Starting...": "Faust starts",
    "Executing _on_partitions_assigned": "partitions assigned",
    "[^---Recovery]: Worker ready": "recovery done",
}
MIB = 2**20


def read_phases(log_path: Path, wall_started: float) -> dict[str, float]:
    """First time each of ``PHASES`` was logged (JSON lines), in s from process start."""
    found: dict[str, float] = {}
    for line in log_path.read_bytes().splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # Faust's start-up banner
        if not isinstance(entry, dict) or entry.get("event") not in PHASES:
            continue
        at = datetime.fromisoformat(str(entry["timestamp"])).timestamp()
        found.setdefault(str(entry["event"]), at - wall_started)
    return found


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _of(starts: list[Start], size: int, kind: str) -> list[Start]:
    return [s for s in starts if s.size == size and s.kind == kind]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _targets(bench: Bench) -> list[str]:
    small, large = min(bench.args.sizes), max(bench.args.sizes)
    restart = {
        n: [s.applied_s for s in _of(bench.starts, n, "after SIGTERM")] for n in (small, large)
    }
    rss = {n: [s.rss / MIB for s in _of(bench.starts, n, "after SIGTERM")] for n in (small, large)}
    pairs = [b / a for a, b in zip(restart[small], restart[large], strict=False)]
    r_small, r_large = _median(restart[small]), _median(restart[large])
    m_small, m_large = _median(rss[small]), _median(rss[large])
    ratio, rss_ratio = r_large / r_small, m_large / m_small
    return [
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| restart to first applied event at {large:,} addresses <= "
        f"{RESTART_RATIO_TARGET}x the time at {small:,} | **{ratio:.2f}x** ({r_large:.1f} s "
        f"vs {r_small:.1f} s, medians; per round {', '.join(f'{x:.2f}' for x in pairs)}) | "
        f"{_verdict(ratio <= RESTART_RATIO_TARGET)} |",
        f"| restart at {large:,} addresses under {RESTART_TARGET_S:.0f} s | "
        f"**{r_large:.1f} s** (slowest {max(restart[large], default=float('nan')):.1f} s) | "
        f"{_verdict(max(restart[large], default=1e9) < RESTART_TARGET_S)} |",
        f"| worker RSS at {large:,} addresses <= {RSS_RATIO_TARGET}x at {small:,} | "
        f"**{rss_ratio:.2f}x** ({m_large:.0f} MiB vs {m_small:.0f} MiB, idle after the "
        f"restart, medians) | {_verdict(rss_ratio <= RSS_RATIO_TARGET)} |",
    ]


def _worlds(bench: Bench) -> list[str]:
    out = [
        "| addresses | changelog records | built in s | full restore: first event applied s "
        "| of which reading the changelog s | changelog records/s |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    assigned, ready = list(PHASES)[2:4]
    for w in bench.worlds:
        full = _of(bench.starts, w.size, "full restore")
        took = full[0].applied_s if full else float("nan")
        p = full[0].phases if full else {}
        reading = p[ready] - p[assigned] if assigned in p and ready in p else float("nan")
        out.append(
            f"| {w.size:,} | {w.records:,} | {w.build_s:.0f} | **{took:.1f}** | "
            f"{reading:.1f} | {w.records / reading:,.0f} |"
        )
    return out


def _starts(bench: Bench) -> list[str]:
    out = [
        "| # | addresses | start | applied s | all committed s | worker CPU s to applied "
        "| RSS MiB idle | peak RSS MiB | other load | then stopped by | stop s |",
        "|--:|--:|---|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for i, s in enumerate(bench.starts, 1):
        stop = "-" if s.stop_s is None else f"{s.stop_s:.1f}"
        out.append(
            f"| {i} | {s.size:,} | {s.kind} | **{s.applied_s:.2f}** | {s.committed_s:.2f} | "
            f"{s.cpu_s:.1f} | {s.rss / MIB:,.0f} | {s.peak_rss / MIB:,.0f} | "
            f"{s.other_load:.0f} % | {s.stopped_by} | {stop} |"
        )
    return out


def _phases(bench: Bench) -> list[str]:
    out = [
        "| # | addresses | start | " + " | ".join(PHASES.values()) + " | applied |",
        "|--:|--:|---|" + "--:|" * (len(PHASES) + 1),
    ]
    for i, s in enumerate(bench.starts, 1):
        cells = [f"{s.phases[e]:.2f}" if e in s.phases else "-" for e in PHASES]
        out.append(f"| {i} | {s.size:,} | {s.kind} | {' | '.join(cells)} | {s.applied_s:.2f} |")
    return out


def render(bench: Bench) -> str:
    m = machine()
    args = bench.args
    minutes = (bench.ended - bench.began) / 60
    out = [
        "## Processors: restart time against table size",
        "",
        "Run: `.venv/bin/python -m bench.proc_restart` (reuses a running `localkafka` broker, "
        "starts one otherwise; `--help` lists the knobs). It rewrites this section. This run "
        f"took {minutes:.0f} minutes, most of it building the state and the full restores.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['implementation']} {m['python']}, "
        f"Linux {m['kernel']}. Run `{bench.run_id}`. Broker: {bench.broker_note}. "
        f"Load average (1, 5, 15 min) before the first worker start: {bench.load_before}.",
        "",
        "Method: per size, the `addresses` changelog (6 partitions, created with the settings "
        "the worker uses, compacted) is filled directly (`bench/proc_state.py`): per address "
        "the records the real pure step writes for a short history (delivered + opened, "
        "+ clicked, a soft bounce, a hard bounce or an unsubscribe; 10 % end suppressed): "
        "the state record, one dedupe-index entry per event, a suppression-list entry when "
        "suppressed, each in the partition the worker would use (murmur2 of the address). "
        "The `messages` table is empty. Before every start one new NexusProMail webhook "
        "(`opened`, for an existing address) is appended to the raw topic as ingest appends "
        "it; *applied* = process start to that address's new record in the changelog; "
        "*all committed* = to the group's commit of every input topic. The worker is the "
        "real `python -m processors worker` (RocksDB, default settings, log level info). "
        "Order: a full restore of each size (empty data dir), then restarts on the same data "
        "dir after SIGTERM, sizes interleaved; the last of them is stopped with kill -9 and "
        "restarted at once, as a supervisor would. RSS = `VmRSS` of the idle worker "
        f"{args.idle_seconds:g} s after everything was committed; peak = `VmHWM`. "
        "*Other load* = machine busy time outside worker and broker, % of one core.",
        "",
        "### Targets (ratios measured in this run)",
        "",
        *_targets(bench),
        "",
        "### State and full restore",
        "",
        *_worlds(bench),
        "",
        "### Starts, in the order they ran",
        "",
        *_starts(bench),
        "",
        "### Where a start's time goes",
        "",
        "Seconds from process start to the first worker log line of each phase: `generation` "
        "(imports done, control and input topics checked), Faust's worker starting, the "
        "consumer group's partitions assigned (Faust waits ~1 s for its tables first), "
        "recovery done (`Worker ready`: changelog read from the store's offset to the end).",
        "",
        *_phases(bench),
        "",
        f"Arguments: `--sizes {' '.join(str(n) for n in args.sizes)}`, "
        f"`--rounds {args.rounds}`, `--idle-seconds {args.idle_seconds:g}`.",
    ]
    return "\n".join(out).rstrip() + "\n"


def write_section(path: Path, bench: Bench) -> None:
    """Replace this benchmark's section of ``path``, creating the file if needed."""
    replace_section(path, BEGIN, END, render(bench))
