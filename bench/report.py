"""The ingest ladder's results as a BENCHMARKS.md section (replaced in place on every run)."""

from __future__ import annotations

from pathlib import Path

from bench.analysis import analysis, cpu_breakdown, mean, targets
from bench.loadgen import Result
from bench.results import NAMES, NOISY_OTHER_PCT, RunData

BEGIN = "<!-- bench.ingest_ladder: begin (generated, do not edit by hand) -->"
END = "<!-- bench.ingest_ladder: end -->"
FILE_INTRO = """# Benchmarks

Written by the scripts in `bench/`; each owns one section between markers and rewrites
it on every run. This machine class is noisy (±20-25 % between runs, DESIGN.md §7), so
compare ratios taken within one run, never absolute numbers across runs.
"""


def _f(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _ms(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _errors(r: Result) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items())) or "none"


def render(d: RunData) -> str:
    m = d.machine
    out = [
        "## Ingest load ladder",
        "",
        "Run: `.venv/bin/python -m bench.ingest_ladder` (about 5 minutes; needs Go for the load",
        "generator and Java for the broker; reuses a running `localkafka` broker, starts one",
        "otherwise; `--help` lists the knobs). It rewrites this section.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['implementation']} {m['python']}, "
        f"Linux {m['kernel']}, {m['go']}. "
        f"Run `{d.run_id}`, {d.started:%Y-%m-%d %H:%M} UTC, {d.elapsed_s:.0f} s "
        f"({d.waited_s:.0f} s of it waiting for other work on the shared machine to pause).",
        f"Broker: {d.broker}.",
        "",
        "Method: each variant is its own server process "
        + ("pinned to core 1" if d.pinned else "(not pinned: fewer than 2 cores)")
        + ", uvloop, access log off; the Go load generator (`bench/loadgen`, pinned to core 0)"
        f" posts ~{d.body_bytes}-byte signed NexusProMail events (1,000 distinct) over "
        f"keep-alive connections. *Saturation*: closed loop, {d.max_conns} connections, "
        f"{d.max_seconds:g} s, three rounds interleaved across variants. *Fixed rates*: open "
        f"loop, {d.rate_conns} connections, {d.rate_seconds:g} s, each latency timed from the "
        "request's scheduled send (no coordinated omission); rates are 25/50/75 % of each "
        "variant's own saturation (mean of rounds 1-2) and 1k/2k/4k req/s where below 70 % "
        "of it. CPU-µs/req = the process's utime+stime delta over the step / requests answered"
        " (broker: the Kafka JVM, which is not pinned and is shared with other users of the"
        " dev broker). *Other load* = machine busy time outside the server, broker and"
        " generator, in % of one core: the noise indicator.",
        "",
    ]
    out += [
        "Variants:",
        "",
        "- **noop**: a bare aiohttp POST handler that reads the body and answers 200.",
        "- **verify**: ingest's `create_app` with the NexusProMail HMAC verifier and a fake",
        "  publisher that acknowledges at once (no broker).",
        "- **append, no wait**: `create_app` with a publisher that hands the record to the",
        "  same acks=all idempotent aiokafka producer but answers without awaiting the ack",
        "  (not durable; it separates the cost of producing from the cost of waiting).",
        "- **durable**: `create_app` with the real `KafkaPublisher` (acks=all, idempotent,",
        "  linger_ms=2, 6 partitions) on the local broker, topics prefixed per run.",
        "- **reference**: seed 001 step 6 as users write it: Flask on werkzeug's threaded",
        "  server, HMAC check, JSON parse, a SQLite upsert with a commit per request.",
        "",
    ]
    out += targets(d)
    out += ["### Saturation (closed loop)", ""]
    out += [
        "| variant | round 1 | round 2 | round 3 | mean req/s | x noop (per round) "
        "| p50 / p99 ms | server µs/req | server core | broker core | generator core "
        "| other load |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for v in d.variants:
        rounds = d.maxes(v)
        if not rounds:
            continue
        cells = [_f(s.result.ok_throughput) + ("*" if s.noisy else "") for s in rounds]
        cells += ["-"] * (3 - len(rounds))
        ratios = d.ratios(v)
        last = rounds[-1]
        out.append(
            f"| {NAMES[v]} | {' | '.join(cells[:3])} | **{_f(d.max_mean(v))}** "
            f"| {mean(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}) "
            f"| {_ms(last.result.p50_ms)} / {_ms(last.result.p99_ms)} "
            f"| {_f(mean([s.server_us for s in rounds]))} "
            f"| {mean([s.server_busy for s in rounds]):.0f} % "
            f"| {mean([s.broker_busy for s in rounds]):.0f} % "
            f"| {max(s.result.loadgen_cpu_pct for s in rounds):.0f} % "
            f"| {mean([s.other_busy for s in rounds]):.0f} % |"
        )
    out += [
        "",
        f"\\* = noisy: outside load above {NOISY_OTHER_PCT:g} % of a core during the round.",
        "",
        "### Fixed rates (open loop, latency from the scheduled send)",
        "",
        "Each step waits (boundedly) for a quiet second before it starts; a step with outside"
        f" load above {NOISY_OTHER_PCT:g} % of a core is measured once more at the end, and the"
        " quieter of the two is shown.",
        "",
    ]
    out += [
        "| variant | step | target req/s | achieved | ok | p50 ms | p90 ms | p99 ms | max ms "
        "| server µs/req | broker µs/req | other load | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for v in d.variants:
        steps = sorted(
            d.rate_steps(v),
            key=lambda s: s.target_rate or 0.0,
        )
        for s in steps:
            r = s.result
            out.append(
                f"| {NAMES[v]} | {s.label}{' (re-run)' if s.attempt > 1 else ''} "
                f"| {_f(s.target_rate)} | {_f(r.ok_throughput)} "
                f"| {s.ok_pct:.1f} % | {_ms(r.p50_ms)} | {_ms(r.p90_ms)} | {_ms(r.p99_ms)} "
                f"| {_ms(r.max_ms)} | {_f(s.server_us)} | {_f(s.broker_us)} "
                f"| {s.other_busy:.0f} % | {_errors(r)} |"
            )
    out += ["", "### Count check", ""]
    out += [
        "| variant | topic | 2xx seen by the generator | 200s counted by ingest "
        "| records in the topic | other statuses | check |",
        "|---|---|--:|--:|--:|---|---|",
    ]
    for c in d.counts:
        other = ", ".join(f"{k}: {n}" for k, n in sorted(c.server_other.items())) or "none"
        verdict = "exact" if c.exact else "**MISMATCH**"
        if c.variant == "nowait":
            verdict += " (not a promise: 200 before the ack)"
        out.append(
            f"| {NAMES[c.variant]} | `{c.topic}` | {c.client_ok:,} | {c.server_200:,} "
            f"| {c.appended:,} | {other} | {verdict} |"
        )
    out += ["", "Counts include the warm-up steps. The run's topics are deleted afterwards.", ""]
    out += cpu_breakdown(d)
    out += analysis(d)
    return "\n".join(out).rstrip() + "\n"


def replace_section(path: Path, begin: str, end: str, body: str) -> None:
    """Replace the text between ``begin`` and ``end`` in ``path`` (append if absent)."""
    section = f"{begin}\n{body}{end}\n"
    text = path.read_text() if path.exists() else FILE_INTRO
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def write_section(path: Path, data: RunData) -> None:
    """Replace this benchmark's section of BENCHMARKS.md, creating the file if needed."""
    replace_section(path, BEGIN, END, render(data))
