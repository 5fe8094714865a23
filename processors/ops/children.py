"""Child processes the operator tools (and the tests and benchmarks) start and stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path


@contextlib.contextmanager
def child_process(
    cmd: list[str],
    env: Mapping[str, str],
    log: Path,
    *,
    cwd: Path | None = None,
    grace_s: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` with ``env`` added to ours, output appended to ``log``; on exit SIGTERM
    it, then SIGKILL after ``grace_s``. Only ever our own child."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=cwd
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
