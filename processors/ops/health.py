"""What ``mailpulse status`` found, the rules that call it unhealthy, and its screen (pure:
no I/O).

A status is two samples of the broker's offsets taken ``interval_s`` apart: the lag, the
DLQ and the command topic at the second sample, and how each moved since the first.
The rules judge the *live* generation only: a shadow generation (a rebuild) is expected
to lag, and its DLQ is a rebuild's, not the pipeline's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class DlqNewest:
    """The newest record of a DLQ topic (the last record of each partition, newest first)."""

    reason: str
    stage: str
    failed_at: datetime | None  # None: the record is not a DLQ record this version reads


@dataclass(frozen=True)
class GenerationStatus:
    generation: str
    live: bool
    group: str
    state: str  # the group coordinator's word: Stable, Empty, PreparingRebalance, Dead...
    members: tuple[str, ...]
    lag: dict[str, int | None]  # per input topic: end minus committed; None: no such topic
    lag_before: int  # total lag at the first sample
    events_per_s: float  # raw records the group committed per second between the samples
    dlq_topic: str
    dlq_records: int  # records the DLQ holds now
    dlq_new: int  # records appended to the DLQ between the samples
    dlq_newest: DlqNewest | None
    commands_topic: str
    commands_published: int  # records ever appended to the command topic
    commands_per_s: float

    @property
    def lag_total(self) -> int:
        return sum(v for v in self.lag.values() if v is not None)


@dataclass(frozen=True)
class BrokerStatus:
    bootstrap: str
    reachable: bool
    brokers: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Thresholds:
    # Lag that grew between the samples is a problem only above this many records: Faust
    # commits every few seconds, so a keeping-up worker's lag moves in small steps.
    max_lag: int = 1000
    # A DLQ record younger than this (or one appended between the samples) is a problem.
    dlq_window: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Problem:
    rule: str  # broker_unreachable, no_live_generation, no_members, lag_growing, dlq_growing
    generation: str | None
    detail: str


@dataclass(frozen=True)
class Status:
    broker: BrokerStatus
    raw_topic: str
    raw_records: int
    raw_in_per_s: float
    interval_s: float
    generations: tuple[GenerationStatus, ...] = ()
    problems: tuple[Problem, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        out["healthy"] = self.healthy
        for gen, data in zip(self.generations, out["generations"], strict=True):
            data["lag_total"] = gen.lag_total
        return out


def judge(status: Status, now: datetime, limits: Thresholds) -> tuple[Problem, ...]:
    """The rules ``status`` breaks, in the order an operator should look at them."""
    if not status.broker.reachable:
        return (Problem("broker_unreachable", None, status.broker.error or "no answer"),)
    live = [g for g in status.generations if g.live]
    if not live:
        return (
            Problem(
                "no_live_generation",
                None,
                "no generation is active yet: start the processors workers once",
            ),
        )
    gen = live[0]
    found: list[Problem] = []
    if not gen.members:
        found.append(
            Problem(
                "no_members",
                gen.generation,
                f"group {gen.group} has no worker ({gen.state}): nothing consumes the raw log",
            )
        )
    if gen.lag_total > gen.lag_before and gen.lag_total > limits.max_lag:
        found.append(
            Problem(
                "lag_growing",
                gen.generation,
                f"lag grew from {gen.lag_before:,} to {gen.lag_total:,} records in "
                f"{status.interval_s:.1f} s (over {limits.max_lag:,})",
            )
        )
    newest = gen.dlq_newest
    failed_at = newest.failed_at if newest is not None else None
    recent = failed_at is not None and now - failed_at < limits.dlq_window
    if gen.dlq_new or recent:
        reason = newest.reason if newest is not None else "?"
        window = limits.dlq_window.total_seconds()
        found.append(
            Problem(
                "dlq_growing",
                gen.generation,
                f"{gen.dlq_new} DLQ record(s) appended in {status.interval_s:.1f} s; newest "
                f"reason {reason}{f', under {window:.0f} s ago' if recent else ''}",
            )
        )
    return tuple(found)


def _lag_text(gen: GenerationStatus) -> str:
    parts = [f"{t} {'missing' if v is None else f'{v:,}'}" for t, v in gen.lag.items()]
    return f"{', '.join(parts)} (total {gen.lag_total:,}, was {gen.lag_before:,})"


def render(status: Status) -> str:
    """The one screen: broker, raw log, each generation, the verdict."""
    b = status.broker
    lines = [
        f"broker {b.bootstrap}: "
        + (f"reachable ({b.brokers} broker(s))" if b.reachable else f"UNREACHABLE {b.error}")
    ]
    if b.reachable:
        lines.append(
            f"raw log {status.raw_topic}: {status.raw_records:,} record(s), "
            f"{status.raw_in_per_s:,.1f}/s in (sampled over {status.interval_s:.1f} s)"
        )
    for g in status.generations:
        mark = "* " if g.live else "  "
        who = ", ".join(g.members) or "none"
        lines.append(
            f"{mark}{g.generation} ({'live' if g.live else 'not live'}): group {g.group} "
            f"{g.state}, {len(g.members)} member(s): {who}"
        )
        lines.append(f"    lag: {_lag_text(g)}")
        lines.append(f"    consumed: {g.events_per_s:,.1f} raw record(s)/s")
        newest = g.dlq_newest
        latest = (
            f", newest {newest.reason} ({newest.stage})"
            + (f" at {newest.failed_at:%Y-%m-%d %H:%M:%S} UTC" if newest.failed_at else "")
            if newest
            else ""
        )
        lines.append(f"    DLQ {g.dlq_topic}: {g.dlq_records:,} record(s){latest}")
        lines.append(
            f"    commands {g.commands_topic}: {g.commands_published:,} published, "
            f"{g.commands_per_s:,.1f}/s"
        )
    if status.healthy:
        lines.append("healthy")
    for p in status.problems:
        where = f" ({p.generation})" if p.generation else ""
        lines.append(f"UNHEALTHY {p.rule}{where}: {p.detail}")
    return "\n".join(lines)
