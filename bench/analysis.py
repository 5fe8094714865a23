"""The generated parts of the report that interpret numbers: targets, CPU, reasons."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.results import NAMES, NOISY_OTHER_PCT, P99_TARGET_MS, RATIO_TARGET, RunData, Step

# DESIGN.md §7: "aiohttp no-op POST ≈ 42k req/s on one core" on this class of machine.
DESIGN_NOOP = 42_000.0
COMMON_STEP = "1000/s"
HALF_STEP = "50% of max"
LADDER = ("noop", "verify", "nowait", "durable")
KAFKA = ("nowait", "durable")


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def broker_background(d: RunData) -> float:
    """The broker's CPU (% of a core) while no Kafka variant ran: its idle + other clients."""
    idle = [s.broker_busy for s in d.steps if s.variant not in KAFKA and s.broker_cpu_s]
    return statistics.median(idle) if idle else 0.0


def broker_us(step: Step, background_pct: float) -> float:
    """Broker CPU per request of this step, net of the background."""
    extra = (step.broker_cpu_s or 0.0) - background_pct / 100 * step.wall_s
    return max(0.0, extra) * 1e6 / max(step.result.answered, 1)


def saturation(d: RunData, v: str) -> tuple[float, float] | None:
    """(server µs/req, net broker µs/req) averaged over the saturation rounds."""
    rounds = d.maxes(v)
    if not rounds:
        return None
    bg = broker_background(d)
    return mean([s.server_us for s in rounds]), mean([broker_us(s, bg) for s in rounds])


def durable_ratio(d: RunData) -> tuple[float, str]:
    """durable/noop saturation: the mean over quiet rounds if any, else over all rounds."""
    quiet = d.ratios("durable", quiet=True)
    if quiet:
        return mean(quiet), f"{len(quiet)} quiet round{'s' if len(quiet) > 1 else ''}"
    return mean(d.ratios("durable")), "all rounds; none was quiet"


def targets(d: RunData) -> list[str]:
    out = ["### Targets (ratios measured in this run)", ""]
    out += ["| target | measured | verdict |", "|---|---|---|"]
    if d.maxes("durable") and d.maxes("noop"):
        ratio, basis = durable_ratio(d)
        noop = {s.label: s for s in d.maxes("noop")}
        rounds = ", ".join(
            f"{s.result.ok_throughput / n.result.ok_throughput:.2f}"
            + ("*" if s.noisy or n.noisy else "")
            for s in d.maxes("durable")
            if (n := noop.get(s.label)) is not None and n.result.ok_throughput
        )
        out.append(
            f"| durable saturation >= {RATIO_TARGET}x noop's | **{ratio:.2f}x** ({basis}; "
            f"per round {rounds}, * = noisy; means {d.max_mean('durable'):,.0f} vs "
            f"{d.max_mean('noop'):,.0f} req/s) "
            f"| {'met' if ratio >= RATIO_TARGET else '**missed**'} |"
        )
    half = d.rate_step("durable", HALF_STEP)
    if half is not None:
        r = half.result
        met = r.p99_ms <= P99_TARGET_MS and half.ok_pct >= 99.9
        noise = f"; outside load {half.other_busy:.0f} % of a core" if half.noisy else ""
        out.append(
            f"| durable p99 <= {P99_TARGET_MS:g} ms at half its own saturation "
            f"({half.target_rate or 0:,.0f} req/s) | **p99 {r.p99_ms:.1f} ms** (p50 "
            f"{r.p50_ms:.1f}, max {r.max_ms:.1f}; {half.ok_pct:.1f} % ok{noise}) "
            f"| {'met' if met else '**missed**'} |"
        )
    for v in ("verify", "nowait", "reference"):
        if d.maxes(v) and d.maxes("noop"):
            out.append(
                f"| context: {NAMES[v]} saturation | {mean(d.ratios(v)):.2f}x noop "
                f"({d.max_mean(v):,.0f} req/s) | |"
            )
    if d.maxes("durable") and d.maxes("reference"):
        out.append(
            "| context: durable vs reference saturation "
            f"| {mean(d.ratios('durable', 'reference')):.1f}x | |"
        )
    return [*out, ""]


def cpu_breakdown(d: RunData) -> list[str]:
    bg = broker_background(d)
    out = [
        "### Where the CPU goes",
        "",
        "CPU per request, at saturation (mean of the rounds) and at the common "
        f"{COMMON_STEP} step. Each ladder rung adds one thing to the rung above it. Broker "
        f"figures are net of its background ({bg:.0f} % of a core, the median while no "
        "Kafka variant ran: its own housekeeping plus other clients of the shared broker).",
        "",
        "| variant | server µs/req at saturation | added by the rung | server µs/req at "
        f"{COMMON_STEP} | added by the rung | broker µs/req at saturation | broker µs/req at "
        f"{COMMON_STEP} |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    prev_sat: float | None = None
    prev_common: float | None = None
    for v in d.variants:
        sat = saturation(d, v)
        common = d.rate_step(v, COMMON_STEP)
        if sat is None:
            continue
        on_ladder = v in LADDER
        add_sat = f"{sat[0] - prev_sat:+,.0f}" if on_ladder and prev_sat is not None else ""
        add_common = ""
        if common is not None and on_ladder and prev_common is not None:
            add_common = f"{common.server_us - prev_common:+,.0f}"
        kafka = v in KAFKA
        out.append(
            f"| {NAMES[v]} | {sat[0]:,.0f} | {add_sat} "
            f"| {f'{common.server_us:,.0f}' if common else 'not run'} | {add_common} "
            f"| {f'{sat[1]:,.0f}' if kafka else ''} "
            f"| {f'{broker_us(common, bg):,.0f}' if kafka and common else ''} |"
        )
        if on_ladder:
            prev_sat = sat[0]
            prev_common = common.server_us if common else None
    out.append("")
    if d.profile is not None and d.profile[1].total_s > 0:
        rate, prof = d.profile
        out += [
            f"cProfile of a separate durable server at {rate:,.0f} req/s for "
            f"{d.rate_seconds:g} s, own time by package (profiling inflates call-heavy Python "
            "code, so read shares, not µs):",
            "",
            "| where | share of profiled time |",
            "|---|--:|",
        ]
        out += [f"| {name} | {100 * t / prof.total_s:.1f} % |" for name, t in prof.groups[:12]]
        out += ["", "Top functions by own time:", ""]
        out += [
            f"{i}. `{name}` {100 * t / prof.total_s:.1f} %"
            for i, (name, t) in enumerate(prof.functions[:10], start=1)
        ]
        out.append("")
    return out


def analysis(d: RunData) -> list[str]:
    out = ["### Reading the numbers", ""]
    noop, durable = d.max_mean("noop"), d.max_mean("durable")
    if noop:
        vm = " (a VM: `hypervisor` is among the CPU flags)" if _hypervisor() else ""
        out.append(
            f"- The bare aiohttp server saturates at {noop:,.0f} req/s here{vm}, "
            f"{noop / DESIGN_NOOP:.2f}x the ~42k req/s DESIGN.md §7 quotes for one core. "
            "Compare ratios from this run only."
        )
    sats = {v: s for v in LADDER if (s := saturation(d, v)) is not None}
    rounds = d.maxes("durable")
    if noop and durable and rounds and len(sats) == len(LADDER):
        ratio, _ = durable_ratio(d)
        busy = mean([s.server_busy for s in rounds])
        broker_busy = mean([s.broker_busy for s in rounds])
        server_us = {v: s[0] for v, s in sats.items()}
        ceiling = 1e6 / server_us["durable"]
        steps = {
            "the ingest handler (verify + record + metrics)": server_us["verify"]
            - server_us["noop"],
            "handing the record to aiokafka": server_us["nowait"] - server_us["verify"],
            "waiting for acks=all": server_us["durable"] - server_us["nowait"],
        }
        biggest = max(steps, key=lambda k: steps[k])
        line = (
            f"- Durable saturation {'meets' if ratio >= RATIO_TARGET else 'misses'} the "
            f"{RATIO_TARGET}x target at {ratio:.2f}x. At saturation the ingest process used "
            f"{busy:.0f} % of its core and the broker JVM {broker_busy:.0f} % of a core, on a "
            f"machine with 2. The ingest process alone needs {server_us['durable']:,.0f} µs "
            f"CPU per request vs {server_us['noop']:,.0f} µs for noop, so even with a free "
            f"broker one core caps it near {ceiling:,.0f} req/s ({ceiling / noop:.2f}x noop). "
            f"Of the {server_us['durable'] - server_us['noop']:,.0f} µs extra, "
            + ", ".join(f"{k} {v:+,.0f} µs" for k, v in steps.items())
            + f"; the largest is {biggest}."
        )
        if busy < 85:
            line += (
                " The ingest core also sat partly idle: requests wait for the broker, whose "
                "CPU competes with the server and the generator for the 2 cores."
            )
        out.append(line)
    half = d.rate_step("durable", HALF_STEP)
    if half is not None:
        r = half.result
        verify_half = d.rate_step("verify", HALF_STEP)
        context = (
            f"; verify, without the broker, answers in p50 {verify_half.result.p50_ms:.1f} / "
            f"p99 {verify_half.result.p99_ms:.1f} ms at its own half load"
            if verify_half is not None
            else ""
        )
        out.append(
            f"- Latency {'meets' if r.p99_ms <= P99_TARGET_MS else 'misses'} the "
            f"{P99_TARGET_MS:g} ms p99 target at half load: durable p50 {r.p50_ms:.1f} / p99 "
            f"{r.p99_ms:.1f} ms at {half.target_rate or 0:,.0f} req/s{context}. The gap is the "
            "acks=all round trip (linger_ms=2, then a produce request, the broker's append, "
            "the response) plus run-queue waits when the broker JVM and the server are "
            "runnable at once on 2 cores."
        )
        sat = saturation(d, "durable")
        if sat is not None:
            out.append(
                f"  At that step the durable server's core was {half.server_busy:.0f} % busy: "
                f"{half.server_us:,.0f} µs per request vs {sat[0]:,.0f} µs at saturation "
                "(open-loop arrivals give fewer requests per event-loop wake-up and smaller "
                "produce batches), so half the closed-loop maximum is not half the CPU, and "
                "requests queue behind each other at the server."
            )
        within = [
            s
            for s in d.rate_steps()
            if s.phase == "rate" and s.variant == "durable" and s.result.p99_ms <= P99_TARGET_MS
        ]
        out.append(
            "  Durable steps with p99 <= "
            f"{P99_TARGET_MS:g} ms: "
            + (", ".join(f"{s.label} ({s.result.p99_ms:.1f} ms)" for s in within) or "none")
            + "."
        )
    if d.profile is not None:
        named = [(n, t) for n, t in d.profile[1].functions if not n.startswith("uvloop")][:3]
        total = d.profile[1].total_s
        if named and total > 0:
            out.append(
                "- The durable profile's largest Python items: "
                + ", ".join(f"`{n.split(' (')[0]}` {100 * t / total:.1f} %" for n, t in named)
                + (
                    "; the rest is spread thin over aiohttp's request path, aiokafka's producer"
                    " and asyncio glue (see the package table): no single hot spot to remove."
                    if named[0][1] / total < 0.10
                    else "."
                )
            )
    over = [
        s
        for s in d.rate_steps()
        if s.label == "75% of max"
        and (s.result.ok_throughput < 0.97 * (s.target_rate or 0) or s.result.p50_ms > 50)
    ]
    if over:
        out.append(
            "- Overloaded at 75 % of their closed-loop maximum (throughput short of the rate or "
            "p50 above 50 ms): "
            + ", ".join(
                f"{NAMES[s.variant]} ({s.result.ok_throughput:,.0f} of "
                f"{s.target_rate or 0:,.0f} req/s, p50 {s.result.p50_ms:,.0f} ms)"
                for s in over
            )
            + ". The closed-loop figure, with 32 connections always busy, overstates what a "
            "server sustains when requests arrive on their own schedule."
        )
    ref = d.maxes("reference")
    if ref:
        out.append(
            f"- The Flask reference saturates at {d.max_mean('reference'):,.0f} req/s using "
            f"{mean([s.server_busy for s in ref]):.0f} % of its core at "
            f"{mean([s.server_us for s in ref]):,.0f} µs CPU per request: requests queue on "
            "SQLite's write lock, each holding it for a commit (journal write + fsync). "
            "Its work happens before the answer, so a slow answer the provider retries "
            "repeats it."
        )
    chosen = d.chosen_steps()
    gens = [s.result.loadgen_cpu_pct for s in chosen]
    if gens:
        top = max(gens)
        out.append(
            f"- The Go generator used at most {top:.0f} % of its core in any step"
            + (": not the bottleneck." if top < 85 else ": near saturation; suspect its numbers.")
        )
    noisy = [s for s in chosen if s.noisy]
    others = [s.other_busy for s in chosen]
    if others:
        out.append(
            f"- Load from outside the benchmark (machine busy time not in the server, broker or "
            f"generator, including kernel network work): median {statistics.median(others):.0f}"
            f" %, max {max(others):.0f} % of a core"
            + (
                f"; above {NOISY_OTHER_PCT:g} % (even after one re-run) in: "
                + ", ".join(f"{s.variant} {s.label} ({s.other_busy:.0f} %)" for s in noisy)
                if noisy
                else ""
            )
            + "."
        )
    failed = [s for s in chosen if s.result.failed]
    if failed:
        out.append(
            "- Steps with errors or requests never sent (all connections busy past the "
            "deadline): "
            + "; ".join(f"{s.variant} {s.label}: {s.result.errors}" for s in failed)
            + "."
        )
    return [*out, ""]


def _hypervisor() -> bool:
    try:
        return " hypervisor" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
