"""A restarted worker keeps its local RocksDB store and reads only the changelog past it.

After a SIGTERM stop, every table partition's local store holds exactly what its
changelog partition holds, and records the offset of its last record (read here with
rocksdict directly, not through the product). Restarted on the same data dir, the worker
applies new events on top of it, and its tables equal what the changelog says.
"""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.helpers import latest_by_key, read_all
from tests.integration.pipeline import PARTITIONS, Pipeline, nexus_event
from tests.integration.stack import running_ingest

OFFSET_KEY = b"__faust\x00offset__"  # where Faust's RocksDB store keeps its changelog offset
KINDS = ["delivered", "opened", "clicked", "bounced.soft", "bounced.hard", "unsubscribed"]


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def _local(datadir: Path, table: str, partition: int) -> dict[bytes, bytes]:
    path = datadir / "g1" / "v1" / "tables" / f"{table}-{partition}.db"
    assert path.is_dir(), f"no local store at {path}"
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
    try:
        items = db.items()
        return {k: v for k, v in items if isinstance(k, bytes) and isinstance(v, bytes)}
    finally:
        db.close()


async def _post(p: Pipeline, first: int, count: int) -> None:
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        for n in range(first, first + count):
            kind = KINDS[n % len(KINDS)]
            email = f"user{n % 40}@example.com"
            at = f"2026-05-14T10:{n // 60 % 60:02d}:{n % 60:02d}Z"
            assert await p.post_nexus(s, nexus_event(kind, email, n=n, at=at)) == 200


async def test_restart_keeps_the_local_store_equal_to_the_changelog(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    await _post(p, 0, 300)
    with p.worker(datadir="w") as worker:
        await p.wait_all_committed("g1", raw_records=300)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, "a SIGTERM stop exits 0"

    for table in ("addresses", "messages"):
        topic = f"{p.group()}-{table}-changelog"
        ends = await _end_offsets(p.bootstrap, topic)
        records = await read_all(p.bootstrap, topic)
        for partition in range(PARTITIONS):
            local = _local(tmp_path / "w", table, partition)
            offset = local.pop(OFFSET_KEY, None)
            in_partition = [r for r in records if r.partition == partition]
            if not in_partition:
                assert offset is None, f"{table}-{partition}: an offset for an empty changelog"
                assert local == {}, f"{table}-{partition}: records no changelog holds"
                continue
            assert offset == str(ends[partition] - 1).encode(), (
                f"{table}-{partition}: store at changelog offset {offset!r}, "
                f"changelog ends at {ends[partition]}"
            )
            assert local == latest_by_key(in_partition), f"{table}-{partition} differs"

    await _post(p, 300, 60)
    with p.worker(datadir="w"):
        await p.wait_all_committed("g1", raw_records=360)
        addresses = await p.table("addresses")
    counts = {a: sum(s["counts"].values()) for a, s in addresses.items()}
    assert sum(counts.values()) == 360, "every event counted once, across the restart"
    assert counts == {f"user{i}@example.com": 9 for i in range(40)}
