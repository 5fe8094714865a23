"""Hot keys and poison records on the real broker (issue: bounded state per key).

* One address with 15,000 events over 72 h and one message id with half of them: every
  table record stays far under the bound, the counts are exact, and 300 of the events
  posted again through ingest count once.
* An event whose state would exceed ``max_record_bytes`` goes to the DLQ with
  ``state_too_large``, and the next event of another address in the same partition is
  applied: one key never stops the others.

Raw records are appended to ``webhooks.raw`` exactly as ingest appends them (body as
value, metadata in headers), except the retries, which go through ingest itself.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from schemas.raw import RawWebhook
from tests.integration.helpers import read_all
from tests.integration.pipeline import PARTITIONS, Pipeline, nexus_event
from tests.integration.stack import running_ingest

HOT = "hot@example.com"
HOT_MESSAGE = "msg-hot"
# The types a seed inbox or a link scanner produces, with a few that suppress.
KINDS = ["delivered"] * 30 + ["opened"] * 35 + ["clicked"] * 30 + ["bounced.soft"] * 4
KINDS += ["bounced.hard"]
START = datetime(2026, 5, 10, tzinfo=UTC)
SPAN = timedelta(hours=72)  # longer than the 48 h dedupe retention: buckets expire
BOUND = 64 * 1024
# Events of the one hot address: far past every bound of its record (32 causes, 48 h of
# dedupe buckets, which the 72 h span expires: the bounds are in time and kinds, not in
# count, so more events test nothing more); bench/proc_hotkey measures larger shapes.
HOT_EVENTS = 15_000


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _hot_events(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` events for HOT in event-time order, every other one of HOT_MESSAGE."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        at = START + SPAN * (i / n) + timedelta(seconds=rng.uniform(0, 5))
        message = HOT_MESSAGE if i % 2 == 0 else f"msg-{i % 500}"
        events.append(nexus_event(rng.choice(KINDS), HOT, n=i, at=_stamp(at), message=message))
    return events


async def _append_raw(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    """Append ``events`` as ingest would: key = source + body hash, acks=all."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1 << 20,
    )
    await producer.start()
    try:
        futures = []
        for event in events:
            body = orjson.dumps(event)
            raw = RawWebhook(
                body=body,
                source="nexuspromail",
                provider="nexuspromail",
                received_at=datetime.now(UTC),
                verification="hmac-sha256",
                http_headers={"content-type": "application/json"},
            )
            key = f"nexuspromail:sha256:{hashlib.sha256(body).hexdigest()}".encode()
            futures.append(
                await producer.send(topic, key=key, value=body, headers=raw.kafka_headers())
            )
        for future in futures:
            await future
    finally:
        await producer.stop()


async def _changelog_sizes(p: Pipeline, table: str) -> list[int]:
    records = await read_all(p.bootstrap, f"{p.group()}-{table}-changelog")
    return [len(r.value) for r in records if r.value is not None]


@pytest.mark.timeout(900)
async def test_one_hot_address_and_message_stay_bounded_and_count_exactly(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    events = _hot_events(HOT_EVENTS)
    await _append_raw(p.bootstrap, p.topic("webhooks.raw"), events)
    # Provider retries of the last day's events (inside the retention of the newest).
    retries = random.Random(3).sample(events[-HOT_EVENTS * 3 // 10 :], HOT_EVENTS // 100)
    with p.worker():
        async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
            for event in retries:
                assert await p.post_nexus(s, event) == 200
        await p.wait_all_committed("g1", raw_records=len(events) + len(retries), timeout=600)
        addresses = await p.table("addresses")
        messages = await p.table("messages")
        sizes = await _changelog_sizes(p, "addresses") + await _changelog_sizes(p, "messages")
    hot = addresses[HOT]
    assert hot["counts"] == dict(sorted(Counter(e["type"] for e in events).items()))
    assert messages[HOT_MESSAGE]["event_count"] == HOT_EVENTS // 2
    assert messages[HOT_MESSAGE]["recipients"] == [HOT]
    assert sum(m["event_count"] for m in messages.values()) == len(events)
    # Far under the bound, whatever the key's traffic: the record does not grow with it.
    assert max(sizes) < BOUND // 4, f"largest table record: {max(sizes)} bytes"
    assert await p.dlq() == []


def _same_partition(address: str, prefix: str) -> str:
    """An address whose events land in the same ``email.events`` partition as ``address``."""

    def partition(a: str) -> int:
        return int(murmur2(a.encode()) & 0x7FFFFFFF) % PARTITIONS

    return next(
        f"{prefix}{i}@example.com"
        for i in range(1000)
        if partition(f"{prefix}{i}@example.com") == partition(address)
    )


async def test_a_record_over_the_bound_goes_to_the_dlq_and_the_worker_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    poison = "poison@example.com"
    after = _same_partition(poison, "after")
    # Each hard bounce is a sticky cause kept in the record (up to max_causes = 32, about
    # 100 bytes each): with a 2 KiB bound, the record outgrows it after a dozen or so.
    at = START
    bounces = [
        nexus_event("bounced.hard", poison, n=i, at=_stamp(at + timedelta(minutes=i)))
        for i in range(30)
    ]
    follow = nexus_event("delivered", after, n=100, at=_stamp(at + timedelta(hours=1)))
    env = {"MAILPULSE_PROCESSORS__MAX_RECORD_BYTES": "2048"}
    with p.worker(env=env):
        async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
            for event in [*bounces, follow]:
                assert await p.post_nexus(s, event) == 200
        await p.wait_all_committed("g1", raw_records=len(bounces) + 1)
        table = await p.table("addresses")
        dlq = await p.dlq()
    refused = [d for d in dlq if d["reason"] == "state_too_large"]
    assert refused, f"expected state_too_large in the DLQ, got {[d['reason'] for d in dlq]}"
    assert {d["stage"] for d in refused} == {"addresses"}
    assert all("max_record_bytes" in d["error"] for d in refused)
    applied = table[poison]["counts"]["bounced.hard"]
    assert applied + len(refused) == len(bounces), "every bounce applied or in the DLQ"
    assert table[after]["counts"] == {"delivered": 1}
    assert max(await _changelog_sizes(p, "addresses")) <= 2048
