"""Summarise a server's cProfile stats by where the time goes (package, then function)."""

from __future__ import annotations

import pstats
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SITE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
STDLIB = re.compile(r"/lib/python3\.\d+/([A-Za-z0-9_]+)")
PROJECT = re.compile(r"/(ingest|schemas|bench|processors)/")


@dataclass(frozen=True)
class ProfileSummary:
    total_s: float
    groups: list[tuple[str, float]]  # (group, seconds), largest first
    functions: list[tuple[str, float]]  # (function, own seconds), largest first


def _group(filename: str, funcname: str) -> str:
    if funcname == "run_app":
        # uvloop's loop is C: its own time (epoll, socket reads/writes, callbacks' glue)
        # lands on the Python frame that called run_forever.
        return "event loop + socket I/O (uvloop, C)"
    if filename == "~":
        # C functions called from Python: name the interesting ones, lump the rest.
        if re.search(r"send|recv|write|read|select|epoll|poll", funcname):
            return "socket/IO calls (C)"
        if re.search(r"hmac|hash|sha|compare_digest|digest", funcname):
            return "hashing (C)"
        return "other C built-ins"
    if m := PROJECT.search(filename):
        return f"mailpulse: {m[1]}"
    if m := SITE.search(filename):
        return m[1]
    if m := STDLIB.search(filename):
        return f"stdlib: {m[1]}"
    return "other"


def summarise(
    path: Path, top: int = 12, group: Callable[[str, str], str] | None = None
) -> ProfileSummary:
    """Own time by ``group(filename, funcname)`` (default: the server grouping) and the
    ``top`` functions by own time."""
    group = group or _group
    stats = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    groups: dict[str, float] = defaultdict(float)
    functions: list[tuple[str, float]] = []
    total = 0.0
    for (filename, line, funcname), (_, _, tottime, _, _) in raw.items():
        total += tottime
        groups[group(filename, funcname)] += tottime
        where = "" if filename == "~" else f" ({_short(filename)}:{line})"
        name = "uvloop event loop, C (seen as run_app)" if funcname == "run_app" else funcname
        functions.append((f"{name}{where}", tottime))
    functions.sort(key=lambda f: f[1], reverse=True)
    ordered = sorted(groups.items(), key=lambda g: g[1], reverse=True)
    return ProfileSummary(total, ordered, functions[:top])


def _short(filename: str) -> str:
    for marker in ("site-packages/", f"{REPO}/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
