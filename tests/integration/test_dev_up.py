"""``./dev up`` (``python -m localkafka.stack``) says "mailpulse is up" only once ingest's
/readyz and the worker's web port answer, and Ctrl-C stops what it started."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.integration.pipeline import Pipeline
from tests.integration.stack import REPO, free_port

UP = "mailpulse is up."


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        status: int = resp.status
        return status


class Output:
    """The stack's output lines, read on a thread so that a wait for one can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self._lines: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout

        def pump() -> None:
            for text in stdout:
                self._lines.put(text.rstrip("\n"))
            self._lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, line: str, timeout: float) -> list[str]:
        """Lines up to and including ``line``; fails on timeout or exit, with what came."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = self._lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise AssertionError(f"no {line!r} within {timeout:.0f} s: {got}") from None
            if text is None:
                raise AssertionError(f"./dev up exited ({self.proc.wait()}) before {line!r}: {got}")
            got.append(text)
            if text == line:
                return got


def test_dev_up_is_up_only_once_both_services_answer(kafka_bootstrap: str, tmp_path: Path) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    ingest_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        **p.worker_env("g1", web_port),
        "PYTHONPATH": str(REPO),
        "MAILPULSE_CONFIG": str(REPO / "config" / "dev.toml"),
        # The broker the tests run: found by its state dir, so the stack neither starts
        # another nor stops this one.
        "MAILPULSE_KAFKA_STATE": os.environ.get("MAILPULSE_KAFKA_STATE", str(REPO / "var/kafka")),
        "MAILPULSE_KAFKA_CACHE": os.environ.get(
            "MAILPULSE_KAFKA_CACHE", str(REPO / ".cache/kafka")
        ),
        "MAILPULSE_INGEST__PORT": str(ingest_port),
        "MAILPULSE_INGEST__KAFKA__TOPIC_PREFIX": p.prefix,
        "MAILPULSE_INGEST__KAFKA__RAW_PARTITIONS": "3",
        "MAILPULSE_PROCESSORS__DATADIR": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "localkafka.stack", "--timeout", "90"],
        env=env,
        cwd=tmp_path,  # its var/logs/ go there
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = Output(proc)
        lines = out.until(UP, timeout=120)
        # Checked the moment it says so: both answer already.
        assert _status(f"http://127.0.0.1:{ingest_port}/readyz") == 200
        assert _status(f"http://127.0.0.1:{web_port}/openapi.json") == 200
        assert "waiting for ingest and the processors to answer ..." in lines
        after = out.until("Ctrl-C stops everything.", timeout=5)
        assert f"  POST webhooks to http://127.0.0.1:{ingest_port}/webhooks/<source>  " in after[0]
        proc.send_signal(signal.SIGINT)
        out.until("stopped.", timeout=60)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "var" / "logs" / "processors.log").exists()
