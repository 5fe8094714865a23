"""A worker process ends with the status a supervisor acts on: non-zero soon after its app
crashes (so systemd or Kubernetes restarts it), zero after a SIGTERM.

The crash is a real broker refusal: the ``addresses`` changelog topic is created before
the worker starts with a ``max.message.bytes`` smaller than any state record, so the first
address write is refused with ``MessageSizeTooLargeError`` (not retriable) and the table
writer crashes the app.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from filelock import FileLock

from processors.settings import ProcessorSettings
from tests.integration.helpers import eventually
from tests.integration.pipeline import PARTITIONS, Pipeline, nexus_event
from tests.integration.stack import REPO, free_port, running_ingest

DUMP_WAIT_S = 3.0  # for the stack dump to reach the log
CRASH_EXIT_GRACE_S: float = ProcessorSettings.model_fields["crash_exit_grace_s"].default


async def test_worker_exits_non_zero_after_its_app_crashes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    await _create_topic(
        kafka_bootstrap, f"{p.group()}-addresses-changelog", {"max.message.bytes": "64"}
    )
    await _post_events(p, count=5)
    port = free_port()
    with p.worker(web_port=port) as worker:
        code = _wait_exit(worker, p, timeout=CRASH_EXIT_GRACE_S + 60, why="after its app crashed")
    assert code != 0, f"a crashed worker must exit non-zero:\n{_tail(p)}"
    crashed = [r for r in _records(p) if r.get("event") == "worker_crashed"]
    assert crashed, f"no worker_crashed record in the log:\n{_tail(p)}"
    assert "MessageSizeTooLargeError" in crashed[0]["error"], crashed[0]
    # A supervisor's restart finds the data dir free.
    lock = FileLock(tmp_path / f"data-{port}" / "g1.lock")
    lock.acquire(timeout=0)
    lock.release()


def test_watchdog_ends_a_crashed_process_whose_shutdown_hangs(tmp_path: Path) -> None:
    """The forced exit itself, which the real crash reaches only when Faust's shutdown
    hangs (a race): a process whose main thread never returns after a crash."""
    program = """
import time
from ingest.logs import configure_logging
from processors.__main__ import exit_when_crashed

class CrashedApp:
    crashed = True
    crash_reason = RuntimeError("the table writer has stopped")

configure_logging("info")
exit_when_crashed(CrashedApp(), grace_s=0.5)
time.sleep(600)  # a shutdown that never ends: only the watchdog ends it within 30 s
"""
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, timeout=30, check=False
    )
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 1, f"status {done.returncode}:\n{out}\n{done.stderr!r}"
    events = [r["event"] for r in _json_lines(out)]
    assert events == ["worker_crashed", "worker_exit_forced"], out


async def test_sigterm_stops_a_healthy_worker_with_status_zero(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    addresses = await _post_events(p, count=3)
    with p.worker() as worker:
        table = await eventually(
            lambda: p.table("addresses"), lambda t: set(t) == addresses, timeout=90
        )
        assert set(table) == addresses, f"applied {sorted(table)} of {sorted(addresses)}"
        worker.send_signal(signal.SIGTERM)
        code = _wait_exit(worker, p, timeout=60, why="after SIGTERM")
    assert code == 0, f"a SIGTERM'd worker must exit 0, got {code}:\n{_tail(p)}"
    assert not [r for r in _records(p) if r.get("event") == "worker_crashed"], _tail(p)


async def _create_topic(bootstrap: str, name: str, config: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1, topic_configs=config)])
    finally:
        await admin.close()


async def _post_events(p: Pipeline, count: int) -> set[str]:
    """``count`` deliveries, one address each, through ingest; returns the addresses."""
    at = "2026-05-14T09:00:00Z"
    events = [nexus_event("delivered", f"exit{n}@example.com", n=n, at=at) for n in range(count)]
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        for event in events:
            assert await p.post_nexus(s, event) == 200
    return {e["data"]["email"] for e in events}


def _wait_exit(proc: subprocess.Popen[bytes], p: Pipeline, timeout: float, why: str) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    # A worker that hangs: its runtime (mode's Worker) writes every thread's and asyncio
    # task's stack to its log on SIGUSR1, which says where it waits. The tail shown is
    # taken before, so that it is the worker's own last lines.
    tail = _tail(p)
    proc.send_signal(signal.SIGUSR1)
    time.sleep(DUMP_WAIT_S)
    logs = ", ".join(str(log) for log in _logs(p))
    raise AssertionError(
        f"worker still running {timeout:.0f} s {why} (task stacks at the end of {logs}):\n{tail}"
    )


def _logs(p: Pipeline) -> list[Path]:
    return sorted(p.workdir.glob("worker-*.log"))


def _records(p: Pipeline) -> list[dict[str, Any]]:
    return [r for log in _logs(p) for r in _json_lines(log.read_text(errors="replace"))]


def _json_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # a line Faust or a library printed, not one of ours
    return records


def _tail(p: Pipeline) -> str:
    return "\n".join(log.read_text(errors="replace")[-4000:] for log in _logs(p))
