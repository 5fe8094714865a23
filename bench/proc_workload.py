"""The processors benchmark's input: seeded NexusProMail webhooks, appended to a raw topic
exactly as ingest appends them (body as value, metadata in ``RawWebhook`` headers)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from ingest.signatures.hmac_body import NEXUSPROMAIL_METHOD
from schemas.raw import RawWebhook

SOURCE = "nexuspromail"
# Event mix of the brief (weights in %); the remaining ~2 % of records are provider retries.
MIX: dict[str, int] = {
    "delivered": 40,
    "opened": 25,
    "clicked": 10,
    "bounced.soft": 10,
    "bounced.hard": 5,
    "complained": 3,
    "unsubscribed": 5,
}
RETRY_SHARE = 0.02
DAY_START = datetime(2026, 5, 13, tzinfo=UTC)
BOUNCE = {
    "bounced.hard": ("550", "5.1.1 The email account that you tried to reach does not exist"),
    "bounced.soft": ("421", "4.2.2 Mailbox full, try again later"),
}


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record of the raw topic: key, value, headers and the partition it goes to."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int
    address: str


def address_partition(address: str, partitions: int) -> int:
    """All records of one address in one raw partition (see ``generate``)."""
    return zlib.crc32(address.lower().encode()) % partitions


def key_partition(key: bytes, partitions: int) -> int:
    """The partition aiokafka's default partitioner (murmur2, as Kafka's Java client and
    so ingest's producer and Faust's) gives ``key``."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def placed_by_key(record: RawRecord, partitions: int) -> RawRecord:
    """``record`` in the partition ingest's producer would choose (by its key)."""
    return replace(record, partition=key_partition(record.key, partitions))


def raw_record(
    event: dict[str, object], address: str, received_at: datetime, partitions: int
) -> RawRecord:
    """The record ingest would append for this webhook body (key = source + body hash)."""
    body = orjson.dumps(event)
    raw = RawWebhook(
        body=body,
        source=SOURCE,
        provider=SOURCE,
        received_at=received_at,
        verification=NEXUSPROMAIL_METHOD,
        http_headers={"content-type": "application/json"},
    )
    key = f"{SOURCE}:sha256:{hashlib.sha256(body).hexdigest()}".encode()
    return RawRecord(
        key, body, raw.kafka_headers(), address_partition(address, partitions), address
    )


def webhook_body(
    rng: random.Random, n: int, kind: str, address: str, message: str, at: datetime
) -> dict[str, object]:
    """A NexusProMail webhook (seed 000) of type ``kind``, with a random event id."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    data: dict[str, object] = {
        "message_id": message,
        "email": address,
        "timestamp": stamp,
        "tags": ["newsletter" if n % 3 else "transactional"],
        "metadata": {"account_id": f"acct_{n % 1000:04d}", "campaign": f"cmp_{n % 37:02d}"},
    }
    if kind in BOUNCE:
        data["bounce_code"], data["bounce_reason"] = BOUNCE[kind]
    if kind == "clicked":
        data["url"] = f"https://shop.example.com/offers/{rng.randrange(500)}?utm_source=mail"
    return {
        "id": f"evt_{rng.getrandbits(64):016x}",
        "type": kind,
        "created_at": stamp,
        "data": data,
    }


def generate(count: int, partitions: int, seed: int = 20260513) -> list[RawRecord]:
    """``count`` raw records, the same for the same arguments.

    About ``count / 10`` addresses (mixed-case local parts for some, so normalisation has
    work), messages of 1-5 events each, event times over one day, arrival sorted by
    receipt time (event time plus a 1-60 s delay), ~2 % exact re-sends of earlier bodies
    (provider retries, same key). Records are placed in a partition chosen by address so
    both pipelines see each address's events in the same order: the suppression commands
    (not only the final state) are then deterministic and comparable run to run.
    """
    rng = random.Random(seed)
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    n_addresses = max(1, count // 10)
    addresses = [
        f"{'User' if i % 7 == 0 else 'user'}{i:06d}@customer-{i % 53:02d}.example.com"
        for i in range(n_addresses)
    ]
    fresh = count - round(count * RETRY_SHARE)
    timed: list[tuple[datetime, RawRecord]] = []
    n = 0
    while n < fresh:
        address = addresses[rng.randrange(n_addresses)]
        message = f"msg_{rng.getrandbits(48):012x}@mta.example.net"
        base = DAY_START + timedelta(seconds=rng.uniform(0, 86_400))
        for _ in range(min(rng.randint(1, 5), fresh - n)):
            at = base + timedelta(seconds=rng.uniform(0, 3_600))
            kind = rng.choices(kinds, weights)[0]
            received = at + timedelta(seconds=rng.uniform(1, 60))
            record = raw_record(
                webhook_body(rng, n, kind, address, message, at), address, received, partitions
            )
            timed.append((received, record))
            n += 1
    for received, record in rng.sample(timed, count - fresh):
        timed.append((received + timedelta(seconds=rng.uniform(5, 600)), record))
    timed.sort(key=lambda t: t[0])
    return [record for _, record in timed]


def expected(records: list[RawRecord]) -> dict[str, int]:
    """What the input holds: records, distinct bodies (= canonical events kept), addresses."""
    return {
        "records": len(records),
        "distinct_events": len({r.key for r in records}),
        "addresses": len({r.address.lower() for r in records}),
    }


def _chunks(records: list[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


async def preload(bootstrap: str, topic: str, records: list[RawRecord]) -> None:
    """Append ``records`` with acks=all and big batches; returns once all are acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=50,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
    )
    await producer.start()
    try:
        for chunk in _chunks(records, 20_000):
            futures = [
                await producer.send(
                    topic, value=r.value, key=r.key, headers=r.headers, partition=r.partition
                )
                for r in chunk
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
