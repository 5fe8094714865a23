"""Batch records between the normaliser and the stateful agents (processors/hops.py) and
the normaliser's batched, in-order sends (processors/runtime/batcher.py)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from aiokafka.partitioner import DefaultPartitioner

from processors.hops import BadItem, Batches, decode_batch, encode_batch
from processors.runtime.batcher import BATCH_HEADERS, Hop, HopBatcher
from schemas.events import CanonicalEvent, RawPosition


def canonical(recipient: str, offset: int) -> CanonicalEvent:
    return CanonicalEvent(
        dedupe_key=f"nexuspromail:evt-{offset}",
        provider="nexuspromail",
        source="nexus",
        type="delivered",
        recipient=recipient,
        message_id=f"msg-{offset}",
        occurred_at=datetime(2026, 5, 13, 10, 0, tzinfo=UTC),
        received_at=datetime(2026, 5, 13, 10, 0, 2, tzinfo=UTC),
        raw=RawPosition(partition=0, offset=offset, index=0),
        verification="hmac-sha256",
    )


PARTITIONER = DefaultPartitioner()


def hop_partition(key: bytes, partitions: int = 6) -> int:
    """What the worker's ``KeyPartition`` gives (the producer's default partitioner)."""
    return int(PARTITIONER(key, list(range(partitions)), list(range(partitions))))


def test_batches_keep_each_partition_in_arrival_order() -> None:
    batches = Batches(hop_partition, max_bytes=1 << 20)
    events = [canonical(f"u{n % 7}@x.org", n) for n in range(40)]
    for e in events:
        batches.add(e.recipient.encode(), e.model_dump_json().encode())
    taken = dict(batches.take())
    assert batches.take() == []
    assert batches.size == 0
    assert sorted(taken) == sorted({hop_partition(e.recipient.encode()) for e in events})
    for partition, value in taken.items():
        decoded = decode_batch(value)
        expected = [e for e in events if hop_partition(e.recipient.encode()) == partition]
        assert decoded == expected
    assert sum(len(decode_batch(v)) for v in taken.values()) == len(events)


def test_a_partition_batch_is_closed_before_it_would_pass_the_byte_limit() -> None:
    events = [canonical("hot@x.org", n) for n in range(30)]
    size = len(events[0].model_dump_json())
    batches = Batches(hop_partition, max_bytes=10 * size)
    for e in events:
        batches.add(b"hot@x.org", e.model_dump_json().encode())
    taken = batches.take()
    assert all(len(value) <= 10 * size for _, value in taken)
    assert len(taken) > 3  # not one record
    assert [e for _, value in taken for e in decode_batch(value)] == events  # in order


def test_one_bad_element_of_a_batch_is_reported_alone() -> None:
    good = [canonical("a@x.org", 1), canonical("b@x.org", 2)]
    broken = {**json.loads(good[0].model_dump_json()), "type": "lost"}
    value = encode_batch(
        [
            good[0].model_dump_json().encode(),
            json.dumps(broken).encode(),
            good[1].model_dump_json().encode(),
        ]
    )
    decoded = decode_batch(value)
    assert decoded[0] == good[0]
    assert decoded[2] == good[1]
    bad = decoded[1]
    assert isinstance(bad, BadItem)
    assert bad.reason == "invalid_canonical_event"
    assert json.loads(bad.body) == broken
    assert "element 1 of the batch" in bad.error


def test_a_value_that_is_no_batch_is_one_bad_item() -> None:
    for value in (b"not json", b'{"a": 1}'):
        (bad,) = decode_batch(value)
        assert isinstance(bad, BadItem)
        assert bad.body == value


@dataclass
class Topic:
    sent: list[tuple[int, list[CanonicalEvent]]] = field(default_factory=list)

    async def send(self, *, key: bytes | None, value: bytes, partition: int, headers: Any) -> None:
        assert key is None
        assert headers == BATCH_HEADERS
        self.sent.append((partition, cast(list[CanonicalEvent], decode_batch(value))))


@dataclass
class Acks:
    acked: list[int] = field(default_factory=list)

    async def ack(self, event: Any) -> None:
        self.acked.append(event)


def hops() -> tuple[list[Topic], list[Hop]]:
    topics = [Topic(), Topic()]
    return topics, [Hop(cast(Any, t), Batches(hop_partition, 1 << 20)) for t in topics]


def batcher(
    hops: list[Hop], acks: Acks, linger_s: float = 60.0, max_records: int = 3
) -> HopBatcher:
    return HopBatcher(cast(Any, None), hops, acks.ack, linger_s, max_records, max_bytes=1 << 20)


async def test_under_a_backlog_a_batch_goes_out_when_full_then_its_records_are_acked() -> None:
    (addresses, messages), (to_addresses, to_messages) = hops()
    acks = Acks()
    async with batcher([to_addresses, to_messages], acks) as out:
        for offset in range(5):
            e = canonical(f"u{offset}@x.org", offset)
            out.add(to_addresses, e.recipient.encode(), e.model_dump_json().encode())
            out.add(to_messages, b"msg", e.model_dump_json().encode())
            await out.done(cast(Any, offset), more_waiting=True)
        assert acks.acked == [0, 1, 2]  # max_events = 3: one flush so far
        assert sum(len(events) for _, events in addresses.sent) == 3
        assert [len(events) for _, events in messages.sent] == [3]  # one key, one record
        await out.done(cast(Any, 5), more_waiting=False)  # caught up: send at once
        assert acks.acked == [0, 1, 2, 3, 4, 5]
        assert [len(events) for _, events in messages.sent] == [3, 2]


async def test_the_linger_sends_what_a_stalled_stream_left_pending() -> None:
    (addresses, _), (to_addresses, to_messages) = hops()
    acks = Acks()
    async with batcher([to_addresses, to_messages], acks, linger_s=0.01, max_records=100) as out:
        e = canonical("a@x.org", 1)
        out.add(to_addresses, b"a@x.org", e.model_dump_json().encode())
        await out.done(cast(Any, 1), more_waiting=True)
        assert acks.acked == []
        for _ in range(100):
            if acks.acked:
                break
            await asyncio.sleep(0.01)
        assert acks.acked == [1]
        assert addresses.sent == [(hop_partition(b"a@x.org"), [e])]
