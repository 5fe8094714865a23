"""``PresentOffsets`` on the real broker: which offsets of a partition hold a record.

Transaction markers take an offset each and are never handed to a consumer, so a
transactional producer makes holes (and a hole at the end) without waiting for the log
cleaner; the reader treats a compacted hole the same way."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer, TopicPartition

from processors.runtime.offsets import PresentOffsets
from tests.integration.helpers import create_topic, unique


async def test_holes_and_a_hole_at_the_end_are_read_as_such(kafka_bootstrap: str) -> None:
    topic = unique("present")
    await create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=topic)
    await producer.start()
    try:
        for values in ([b"a", b"b", b"c"], [b"d", b"e"]):  # offsets 0-2 + marker, 4-5 + marker
            async with producer.transaction():
                for value in values:
                    await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    reader = PresentOffsets(kafka_bootstrap)
    try:
        await _check(reader, tp)
    finally:
        await reader.close()


async def _check(reader: PresentOffsets, tp: TopicPartition) -> None:
    scan = await reader.scan(tp, 0, 7)
    assert scan.present == (0, 1, 2, 4, 5)
    assert scan.covered == 7
    assert scan.hole(3, 4) is True
    assert scan.hole(3, 5) is False
    assert scan.hole(6, 7) is True

    # From inside a hole to the end: nothing there, and read to the end all the same.
    tail = await reader.scan(tp, 6, 7)
    assert (tail.present, tail.covered, tail.hole(6, 7)) == ((), 7, True)
    # A read stops at the first record before ``stop``: it need not read all of them.
    first = await reader.scan(tp, 1, 7)
    assert first.present[0] == 1
    assert first.hole(1, 7) is False
