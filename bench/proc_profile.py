"""Where a Faust worker spends its time: a worker run under cProfile for a fixed window,
summarised by package (own time) and by function."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import profiling
from bench.proc_kafka import Broker, cpu_seconds
from bench.proc_runs import Names, command, faust_env, process

SITE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
STDLIB = re.compile(r"/lib/python3\.\d+/([A-Za-z0-9_]+)")
PROJECT = re.compile(r"/(ingest|schemas|processors)/([A-Za-z0-9_]+)")
C_IO = re.compile(r"send|recv|write|read|select|epoll|poll|socket")
C_PYDANTIC = re.compile(r"model_validate|model_dump|validate_python|to_json|__init__ of|pydantic")


@dataclass
class ProfileRun:
    seconds: float = 0.0
    events: int = 0  # raw records normalised in the window (email.events growth)
    cpu: float = 0.0
    total: float = 0.0  # own time summed over all functions (profiled, inflated)
    groups: list[tuple[str, float]] = field(default_factory=list)
    functions: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


def _group(filename: str, funcname: str) -> str:
    if filename == "~":
        if "rocksdict" in funcname or "Rdict" in funcname:
            return "rocksdict (C)"
        if C_PYDANTIC.search(funcname):
            return "pydantic-core (C)"
        if C_IO.search(funcname):
            return "socket / selector calls (C)"
        return "other C built-ins"
    if m := PROJECT.search(filename):
        return f"mailpulse {m[1]}.{m[2]}"
    if m := SITE.search(filename):
        return m[1]
    if m := STDLIB.search(filename):
        return f"stdlib {m[1]}"
    return "other"


def summarise(path: Path, top: int = 15) -> ProfileRun:
    summary = profiling.summarise(path, top, group=_group)
    return ProfileRun(total=summary.total_s, groups=summary.groups, functions=summary.functions)


async def profile_worker(broker: Broker, names: Names, workdir: Path, seconds: float) -> ProfileRun:
    """Run a worker under cProfile from its first output for ``seconds``, then stop it."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    prof = workdir / "worker.prof"
    env = faust_env(names, broker.bootstrap, workdir / "data")
    normalised = [names.hops[0]]
    with process(command(names, broker.bootstrap, profile=prof), env, workdir / "log") as proc:
        deadline = time.monotonic() + 120
        while sum((await broker.end_offsets(normalised)).values()) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                return ProfileRun(error="the profiled worker produced no output")
            await asyncio.sleep(0.2)
        began, cpu0 = time.monotonic(), cpu_seconds(proc.pid)
        before = sum((await broker.end_offsets(normalised)).values())
        await asyncio.sleep(seconds)
        after = sum((await broker.end_offsets(normalised)).values())
        took, cpu = time.monotonic() - began, cpu_seconds(proc.pid) - cpu0
    if not prof.exists():
        return ProfileRun(seconds=took, events=after - before, cpu=cpu, error="no profile written")
    result = summarise(prof)
    result.seconds, result.events, result.cpu = took, after - before, cpu
    return result
