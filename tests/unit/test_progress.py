"""Long operator commands report progress: plain lines when the output is no terminal."""

from __future__ import annotations

import io
import time

import pytest

from processors.ops.progress import progress


def test_plain_lines_with_count_rate_and_eta_then_a_last_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([100.0, 102.0, 102.0, 102.5, 104.0, 104.0, 106.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    with progress("raw", 100, out=out, every_s=2.0) as bar:
        bar.update(40, note="hops lag 3")  # t=102: printed
        bar.update(50)  # t=102.5: within every_s, not printed
        bar.update(80, total=160)  # t=104: printed, the total grew
    lines = out.getvalue().splitlines()
    assert lines == [
        "raw: 40/100 records (40%, 20 records/s, ETA 0:03); hops lag 3",
        "raw: 80/160 records (50%, 20 records/s, ETA 0:04)",
        "raw: 80/160 records (50%, 13 records/s, ETA 0:06)",
    ]


def test_without_a_total_only_the_count_and_rate() -> None:
    out = io.StringIO()
    with progress("scan", None, out=out, unit="DLQ records") as bar:
        bar.update(7)
    assert out.getvalue().startswith("scan: 7 DLQ records (")
    assert "ETA" not in out.getvalue()
    assert "%" not in out.getvalue()


def test_nothing_reported_prints_nothing() -> None:
    out = io.StringIO()
    with progress("append", 0, out=out):
        pass
    assert out.getvalue() == ""
