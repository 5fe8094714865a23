"""Build and run the Go load generator (bench/loadgen/main.go); parse its JSON result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BIN = BENCH_DIR / ".bin" / "loadgen"
SOURCE = BENCH_DIR / "loadgen" / "main.go"


class LoadgenError(RuntimeError):
    """The load generator could not be built or did not produce a result."""


@dataclass(frozen=True)
class Result:
    mode: str
    target_rate: float
    elapsed_s: float
    scheduled: int
    sent: int
    answered: int
    ok: int
    errors: dict[str, int]
    throughput: float
    ok_throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    loadgen_cpu_s: float
    loadgen_cpu_pct: float

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def build() -> Path:
    """Compile the generator unless the binary is newer than its source."""
    if BIN.exists() and BIN.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BIN
    go = shutil.which("go")
    if go is None:
        raise LoadgenError("`go` is not on PATH; the load generator is written in Go")
    BIN.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    proc = subprocess.run(
        [go, "build", "-o", str(BIN), str(SOURCE)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise LoadgenError(f"go build failed:\n{proc.stderr}")
    return BIN


def run(
    url: str,
    events: Path,
    *,
    mode: str,
    duration_s: float,
    conns: int,
    rate: float = 1.0,
    max_requests: int = 1_000_000,
    timeout_s: float = 10.0,
    cpu: int | None = None,
) -> Result:
    """One bounded load step against a loopback URL; returns when the generator exits."""
    cmd = [
        str(build()),
        f"-url={url}",
        f"-events={events}",
        f"-mode={mode}",
        f"-rate={rate}",
        f"-duration={duration_s}s",
        f"-conns={conns}",
        f"-max-requests={max_requests}",
        f"-timeout={timeout_s}s",
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        timeout=duration_s + 2 * timeout_s + 30,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    if proc.returncode != 0:
        raise LoadgenError(f"loadgen exited {proc.returncode}: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    return Result(
        mode=data["mode"],
        target_rate=data["target_rate"],
        elapsed_s=data["elapsed_s"],
        scheduled=data["scheduled"],
        sent=data["sent"],
        answered=data["answered"],
        ok=data["ok"],
        errors={k: int(v) for k, v in data["errors"].items()},
        throughput=data["throughput"],
        ok_throughput=data["ok_throughput"],
        p50_ms=data["p50_ms"],
        p90_ms=data["p90_ms"],
        p99_ms=data["p99_ms"],
        p999_ms=data["p999_ms"],
        max_ms=data["max_ms"],
        loadgen_cpu_s=data["loadgen_cpu_s"],
        loadgen_cpu_pct=data["loadgen_cpu_pct"],
    )
