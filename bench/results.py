"""What one ladder run measured: steps, count checks, the run's context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bench.loadgen import Result
from bench.profiling import ProfileSummary

NAMES = {
    "noop": "noop (bare aiohttp)",
    "verify": "verify (create_app, HMAC, acking fake)",
    "nowait": "append, no wait",
    "durable": "durable (acks=all)",
    "reference": "reference (Flask + SQLite)",
}
RATIO_TARGET = 0.5
P99_TARGET_MS = 10.0
# Machine busy time outside the benchmark above this (% of one core) makes a step "noisy":
# rate steps are measured again, and noisy saturation rounds are shown apart.
NOISY_OTHER_PCT = 25.0


@dataclass(frozen=True)
class Step:
    phase: str
    variant: str
    label: str
    target_rate: float | None
    result: Result
    wall_s: float
    server_cpu_s: float
    broker_cpu_s: float | None
    # Whole machine during the step, to see load from outside the benchmark.
    system_busy_s: float = 0.0
    steal_s: float = 0.0
    attempt: int = 1

    @property
    def server_us(self) -> float:
        return self.server_cpu_s * 1e6 / max(self.result.answered, 1)

    @property
    def broker_us(self) -> float | None:
        if self.broker_cpu_s is None:
            return None
        return self.broker_cpu_s * 1e6 / max(self.result.answered, 1)

    @property
    def server_busy(self) -> float:
        """Share of one core the server used while the generator ran."""
        return 100 * self.server_cpu_s / max(self.wall_s, 1e-9)

    @property
    def broker_busy(self) -> float:
        return 100 * (self.broker_cpu_s or 0.0) / max(self.wall_s, 1e-9)

    @property
    def other_busy(self) -> float:
        """Share of a core used by everything else on the machine (other users' work)."""
        ours = self.server_cpu_s + (self.broker_cpu_s or 0.0) + self.result.loadgen_cpu_s
        return max(0.0, 100 * (self.system_busy_s - ours) / max(self.wall_s, 1e-9))

    @property
    def noisy(self) -> bool:
        return self.other_busy > NOISY_OTHER_PCT

    @property
    def ok_pct(self) -> float:
        return 100 * self.result.ok / max(self.result.scheduled, 1)

    def one_line(self) -> str:
        r = self.result
        errors = f" errors={r.errors}" if r.errors else ""
        return (
            f"{self.variant:9} {self.label:12} {r.ok_throughput:8.0f} ok/s "
            f"p50={r.p50_ms:7.2f} p99={r.p99_ms:8.2f} ms  server={self.server_us:6.0f} us/req "
            f"({self.server_busy:3.0f}% core) broker={self.broker_busy:3.0f}% "
            f"loadgen={r.loadgen_cpu_pct:3.0f}% other={self.other_busy:3.0f}%{errors}"
        )


@dataclass(frozen=True)
class CountCheck:
    variant: str
    topic: str
    client_ok: int
    server_200: int
    server_other: dict[str, int]
    appended: int

    @property
    def exact(self) -> bool:
        return self.client_ok == self.server_200 == self.appended


@dataclass(frozen=True)
class RunData:
    run_id: str
    started: datetime
    elapsed_s: float
    waited_s: float
    machine: dict[str, str]
    body_bytes: int
    broker: str
    pinned: bool
    max_seconds: float
    rate_seconds: float
    max_conns: int
    rate_conns: int
    steps: list[Step]
    counts: list[CountCheck]
    profile: tuple[float, ProfileSummary] | None

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(s.variant for s in self.steps))

    def maxes(self, variant: str) -> list[Step]:
        return [s for s in self.steps if s.phase == "max" and s.variant == variant]

    def max_mean(self, variant: str) -> float:
        rounds = self.maxes(variant)
        return sum(s.result.ok_throughput for s in rounds) / max(len(rounds), 1)

    def ratios(self, variant: str, base: str = "noop", quiet: bool = False) -> list[float]:
        """variant/base saturation, round by round (each pair measured back to back).

        ``quiet`` keeps only rounds where neither step saw outside load.
        """
        mine = {s.label: s for s in self.maxes(variant)}
        theirs = {s.label: s for s in self.maxes(base)}
        return [
            m.result.ok_throughput / theirs[k].result.ok_throughput
            for k, m in mine.items()
            if k in theirs
            and theirs[k].result.ok_throughput
            and not (quiet and (m.noisy or theirs[k].noisy))
        ]

    def rate_steps(self, variant: str | None = None) -> list[Step]:
        """Each fixed-rate step once: of repeated measurements, the one with least outside load."""
        best: dict[tuple[str, str], Step] = {}
        for s in self.steps:
            if s.phase != "rate" or (variant is not None and s.variant != variant):
                continue
            key = (s.variant, s.label)
            if key not in best or s.other_busy < best[key].other_busy:
                best[key] = s
        return list(best.values())

    def rate_step(self, variant: str, label: str) -> Step | None:
        for s in self.rate_steps(variant):
            if s.label == label:
                return s
        return None

    def chosen_steps(self) -> list[Step]:
        """Saturation rounds plus the chosen fixed-rate steps."""
        return [s for s in self.steps if s.phase == "max"] + self.rate_steps()
