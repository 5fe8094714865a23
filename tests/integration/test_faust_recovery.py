"""A Faust RocksDB table survives kill -9 and a lost data dir: it is rebuilt from its changelog."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from tests.integration.helpers import (
    consume_until,
    create_topic,
    eventually,
    produce,
    unique,
    wait_committed,
)

APP = Path(__file__).with_name("faust_recovery_app.py")


def _start_worker(
    bootstrap: str, name: str, datadir: Path, ready: Path, log: Path
) -> subprocess.Popen[bytes]:
    ready.unlink(missing_ok=True)
    env = {
        **os.environ,
        "SMOKE_BOOTSTRAP": bootstrap,
        "SMOKE_NAME": name,
        "SMOKE_DATADIR": str(datadir),
        "SMOKE_READY": str(ready),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(APP)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _ready(ready: Path, worker: subprocess.Popen[bytes], log: Path) -> bool:
    assert worker.poll() is None, log.read_text()[-3000:]
    return ready.exists()


async def _until_ready(ready: Path, worker: subprocess.Popen[bytes], log: Path) -> None:
    async def probe() -> bool:
        return _ready(ready, worker, log)

    await eventually(probe, bool, timeout=120, what="the worker owning both partitions")


def _latest_totals(records: list) -> dict[str, int]:  # type: ignore[type-arg]
    return {r.key.decode(): orjson.loads(r.value) for r in records}


async def test_table_recovers_from_changelog_after_kill(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    name = unique("smoke-faust").replace(".", "-")
    datadir = tmp_path / "data"
    log = tmp_path / "worker.log"
    ready = tmp_path / "ready"
    first = [
        (k.encode(), str(v).encode())
        for k, v in [("a", 1), ("b", 2), ("a", 3), ("c", 5), ("b", 7), ("a", 6)]
    ]
    expected = {"a": 10, "b": 9, "c": 5}

    await create_topic(kafka_bootstrap, f"{name}.numbers", partitions=2)
    worker = _start_worker(kafka_bootstrap, name, datadir, ready, log)
    try:
        await _until_ready(ready, worker, log)
        await produce(kafka_bootstrap, f"{name}.numbers", first)
        seen = await consume_until(
            kafka_bootstrap, f"{name}.totals", lambda r: _latest_totals(r) == expected, timeout=180
        )
        assert _latest_totals(seen) == expected, log.read_text()[-3000:]
        # Kill only once the input offsets are committed: this test is about the table,
        # not about at-least-once redelivery (the processors handle that with dedupe).
        committed = await wait_committed(
            kafka_bootstrap, name, f"{name}.numbers", len(first), timeout=180
        )
        assert committed == len(first)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    # Losing the local RocksDB files forces recovery from the changelog topic alone.
    shutil.rmtree(datadir)
    worker = _start_worker(kafka_bootstrap, name, datadir, ready, log)
    try:
        await _until_ready(ready, worker, log)
        await produce(
            kafka_bootstrap, f"{name}.numbers", [(b"a", b"100"), (b"b", b"100"), (b"c", b"100")]
        )
        after = {"a": 110, "b": 109, "c": 105}
        seen = await consume_until(
            kafka_bootstrap, f"{name}.totals", lambda r: _latest_totals(r) == after, timeout=180
        )
        assert _latest_totals(seen) == after, log.read_text()[-3000:]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
