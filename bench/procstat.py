"""Process CPU time from /proc and a description of the machine."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread the process ever had (live and exited)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory(pid: int) -> dict[str, int]:
    """Resident set now (``VmRSS``) and at its peak (``VmHWM``), in bytes."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024  # kB
    return found


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


def system_cpu() -> tuple[float, float]:
    """(busy, steal) seconds summed over all cores since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / TICKS, steal / TICKS


def pin_to(cpu: int | None) -> None:
    """Pin the calling process (and the children it starts later) to one core."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        return "go not found"
    out = subprocess.run([go, "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def machine() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "go": go_version(),
    }
