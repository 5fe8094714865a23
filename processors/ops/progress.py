"""Progress of a long operator command (rebuild, replay, re-drive): a bar on a terminal,
plain lines otherwise.

On a terminal it is rich's progress bar with the count, the rate and the time left. In
a log or a pipe it is one line every ``every_s`` seconds and one at the end, with the
same figures, so CI output and ``nohup`` logs stay readable.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class Reporter(Protocol):
    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        """``done`` of ``total`` units so far (``total`` may change); ``note`` is shown after."""


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlainLines:
    """``label: done/total (pct, rate/s, ETA m:ss) note``, at most every ``every_s``."""

    def __init__(self, label: str, total: int | None, unit: str, out: TextIO, every_s: float):
        self.label, self.total, self.unit, self.out, self.every_s = label, total, unit, out, every_s
        self.began = time.monotonic()
        self.printed = float("-inf")
        self.last: tuple[int, str] | None = None

    def line(self, done: int, note: str) -> str:
        elapsed = max(time.monotonic() - self.began, 1e-9)
        rate = done / elapsed
        count = f"{done:,}" if self.total is None else f"{done:,}/{self.total:,}"
        parts = [f"{rate:,.0f} {self.unit}/s"]
        if self.total:
            parts.insert(0, f"{min(done / self.total, 1):.0%}")
            if rate > 0 and done < self.total:
                parts.append(f"ETA {_eta((self.total - done) / rate)}")
        return (
            f"{self.label}: {count} {self.unit} ({', '.join(parts)}){f'; {note}' if note else ''}"
        )

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        if total is not None:
            self.total = total
        self.last = (done, note)
        now = time.monotonic()
        if now - self.printed >= self.every_s:
            self.printed = now
            print(self.line(done, note), file=self.out, flush=True)

    def close(self) -> None:
        if self.last is not None and self.printed != float("-inf"):
            print(self.line(*self.last), file=self.out, flush=True)


class RateColumn(ProgressColumn):
    """Units per second, as rich measures it over its recent updates."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "-" if speed is None else f"{speed:,.0f}"
        return Text(f"{shown} {self.unit}/s", style="progress.data.speed")


class RichBar:
    def __init__(self, progress: Progress, label: str, total: int | None) -> None:
        self.progress = progress
        self.task = progress.add_task(label, total=total, note="")

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        self.progress.update(self.task, completed=done, total=total, note=note)


@contextlib.contextmanager
def progress(
    label: str,
    total: int | None,
    *,
    unit: str = "records",
    out: TextIO | None = None,
    every_s: float = 2.0,
) -> Iterator[Reporter]:
    """A ``Reporter`` for one operation: a rich bar when ``out`` is a terminal."""
    stream = out if out is not None else sys.stdout
    console = Console(file=stream)
    if not console.is_terminal:
        plain = PlainLines(label, total, unit, stream, every_s)
        try:
            yield plain
        finally:
            plain.close()
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(unit),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns, console=console) as bar:
        yield RichBar(bar, label, total)
