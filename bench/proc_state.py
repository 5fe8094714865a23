"""Table state for the restart benchmark, built fast: valid ``addresses`` records produced
straight to the table's changelog, each in the partition the worker would have used.

A worker writes an address's records (state, dedupe-index and suppression-list entries,
processors/keys.py) to the changelog partition of the ``email.events`` record it applied,
and ``email.events`` is partitioned by aiokafka's default partitioner (murmur2 of the key
bytes). Each address here gets one of a few *templates*: the records the real pure step
(``processors.step``) wrote for a short event history of a placeholder address, with the
placeholder address and event ids replaced per address. So every record is one the
worker could have written, and the state is what a real history leaves.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from bench.proc_runs import PARTITIONS, Names
from bench.proc_workload import key_partition, raw_record, webhook_body
from processors.app import topic_specs
from processors.keys import dedupe_entry
from processors.settings import ProcessorSettings, TopicSettings
from processors.step import Normalised, address_step, normalise_record
from schemas.topics import TopicSpec, ensure_topics

# What Faust gives a table's changelog topic (faust/tables/base.py: compacting=True).
CHANGELOG_CONFIG = {"cleanup.policy": "compact"}
OWNER = b"p1aceholder-owner@example.invalid"
EVENT = b"p1aceholder-evt"
# (share in %, the event history of the address): 10 % of the addresses end suppressed.
TEMPLATES: list[tuple[int, tuple[str, ...]]] = [
    (60, ("delivered", "opened")),
    (20, ("delivered", "opened", "clicked")),
    (10, ("delivered", "bounced.soft")),
    (5, ("delivered", "bounced.hard")),
    (5, ("delivered", "unsubscribed")),
]
HISTORY_START = datetime(2026, 5, 12, 8, tzinfo=UTC)
# New events are later than every template event: they change the record.
NEW_EVENTS_AT = HISTORY_START + timedelta(days=1)

Record = tuple[int, bytes, bytes]  # (partition, key, value)


def address_of(i: int) -> str:
    """The ``i``-th address of the state (already normalised: lower case)."""
    return f"user{i:07d}@customer-{i % 53:02d}.example.com"


def worker_settings(names: Names, bootstrap: str, control: str) -> ProcessorSettings:
    """The settings ``proc_runs.faust_env`` (plus ``control``) gives the worker."""
    app_id, generation = names.group.rsplit("-", 1)
    topics = TopicSettings(
        prefix="",
        raw=names.raw,
        email_events=names.hops[0],
        message_events=names.hops[1],
        dlq=names.extra_outputs[0],
        suppression=names.commands,
        control=control,
        partitions=PARTITIONS,
        raw_partitions=PARTITIONS,
    )
    return ProcessorSettings(
        app_id=app_id, generation=generation, bootstrap_servers=bootstrap, topics=topics
    )


async def create_topics(settings: ProcessorSettings, names: Names) -> None:
    """The worker's topics as it creates them, and both changelogs as Faust would."""
    rf = settings.topics.replication_factor
    changelogs = [
        TopicSpec(t, settings.topics.partitions, rf, CHANGELOG_CONFIG)
        for t in (names.addresses, names.messages)
    ]
    await ensure_topics(settings.bootstrap_servers, [*topic_specs(settings), *changelogs])


def template(kinds: tuple[str, ...], settings: ProcessorSettings) -> list[tuple[bytes, bytes]]:
    """The table records the pure step leaves for ``kinds`` applied to the placeholder."""
    store: dict[bytes, bytes] = {}
    owner = OWNER.decode()
    state = None
    rng = random.Random(len(kinds))
    for n, kind in enumerate(kinds):
        at = HISTORY_START + timedelta(minutes=17 * n)
        body = webhook_body(rng, n, kind, owner, f"msg-{EVENT.decode()}-{n}", at)
        body["id"] = f"{EVENT.decode()}-{n}"
        raw = raw_record(body, owner, at + timedelta(seconds=2), PARTITIONS)
        result = normalise_record(raw.value, raw.headers, 0, n, settings.normalise)
        assert isinstance(result, Normalised), result
        (event,) = result.canonical

        def seen(bucket: int, key: str) -> bool:
            return dedupe_entry(owner, bucket, key) in store

        outcome = address_step(state, event, settings.policy, seen)
        state = outcome.state
        value = state.model_dump_json().encode()

        def keys_in(prefix: bytes) -> list[bytes]:
            return sorted(k for k in store if k.startswith(prefix))

        for key, written in outcome.writes(value, keys_in):
            if written is None:
                store.pop(key, None)
            else:
                store[key] = written
    assert state is not None
    # The run's raw topic is new: raw positions from another log would make its first
    # offsets look like replays, so the records carry none (as after a raw-log rebuild).
    state = state.model_copy(update={"dedupe": state.dedupe.model_copy(update={"positions": {}})})
    store[OWNER] = state.model_dump_json().encode()
    return sorted(store.items())


def address_records(count: int, settings: ProcessorSettings) -> Iterator[Record]:
    """Every changelog record of ``count`` addresses, address after address."""
    shapes = [template(kinds, settings) for _, kinds in TEMPLATES]
    wheel = [i for i, (share, _) in enumerate(TEMPLATES) for _ in range(share)]
    for i in range(count):
        owner = address_of(i).encode()
        event = b"e%07d" % i
        partition = key_partition(owner, PARTITIONS)
        for key, value in shapes[wheel[i % len(wheel)]]:
            yield (
                partition,
                key.replace(OWNER, owner).replace(EVENT, event),
                value.replace(OWNER, owner).replace(EVENT, event),
            )


def is_suppressed(i: int) -> bool:
    """Whether address ``i`` got a template that suppresses (bounce or unsubscribe)."""
    wheel = [kinds for share, kinds in TEMPLATES for _ in range(share)]
    return wheel[i % len(wheel)][-1] in ("bounced.hard", "unsubscribed")


async def produce(bootstrap: str, topic: str, records: Iterator[Record]) -> int:
    """Append ``records`` to their partitions in ~1 MiB batches (acks=all); returns count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
        linger_ms=20,
    )
    await producer.start()
    batches = {p: producer.create_batch() for p in range(PARTITIONS)}
    pending: list[asyncio.Future[object]] = []
    count = 0
    try:
        for partition, key, value in records:
            count += 1
            if batches[partition].append(key=key, value=value, timestamp=None) is not None:
                continue
            batch = batches[partition]
            pending.append(await producer.send_batch(batch, topic, partition=partition))
            batches[partition] = producer.create_batch()
            batches[partition].append(key=key, value=value, timestamp=None)
            if len(pending) >= 32:  # bound what waits in memory
                await asyncio.gather(*pending)
                pending.clear()
        for partition, batch in batches.items():
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count
