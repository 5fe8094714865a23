"""Webhook load and cluster probes shared by the cluster tests and the fault suite.

Senders behave like providers: a 503 is retried after a short pause until the sender's
patience runs out, anything else for a valid webhook is a failure. Every answer is kept
with its time, so a scenario can say what ingest answered while the brokers were down
and how long no webhook was accepted.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.helpers import eventually, read_all
from tests.integration.pipeline import KINDS, Pipeline, nexus_event

RETRY_PAUSE_S = 0.25


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent and answered (monotonic seconds), and the status."""

    sent: float
    answered: float
    status: int


@dataclass
class Load:
    """What the senders got back, per event id."""

    acknowledged: set[str] = field(default_factory=set)
    answers: list[Answer] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    sent: int = 0

    @property
    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    def accepted_between(self, start: float, end: float) -> list[Answer]:
        """The 200s for requests sent at or after ``start`` and answered before ``end``."""
        return [a for a in self.answers if a.status == 200 and start <= a.sent and a.answered < end]

    def longest_without_200(self) -> float:
        """The longest time between two consecutive 200s (or from the first request)."""
        times = sorted(a.answered for a in self.answers if a.status == 200)
        if not self.answers or not times:
            return float("inf")
        first = min(a.sent for a in self.answers)
        return max(b - a for a, b in zip([first, *times], times, strict=False))


def workload(tag: str, addresses: int = 200, seed: int = 7) -> Iterator[dict[str, Any]]:
    """An endless stream of NexusProMail webhooks of every kind over ``addresses``; every
    tenth is a provider retry of an earlier one (same event id)."""
    rng = random.Random(seed)
    sent: list[dict[str, Any]] = []
    n = 0
    while True:
        if sent and rng.random() < 0.1:
            yield rng.choice(sent)
            continue
        minute, second = divmod(rng.randrange(3600), 60)
        event = nexus_event(
            rng.choice(KINDS),
            f"{tag}-{rng.randrange(addresses)}@cluster.example",
            n=n,
            at=f"2026-05-14T09:{minute:02d}:{second:02d}Z",
            message=f"msg_{tag}_{rng.randrange(max(1, n // 3) + 1)}",
            event_id=f"evt_{tag}_{n}",
        )
        sent.append(event)
        n += 1
        yield event


async def send(
    p: Pipeline,
    load: Load,
    events: Iterator[dict[str, Any]],
    *,
    stop: asyncio.Event,
    senders: int = 12,
    pause_s: float = 0.01,
    patience_s: float = 15.0,
    limit: int = 50_000,
) -> None:
    """Post ``events`` from ``senders`` concurrent senders until ``stop`` is set or
    ``limit`` webhooks were sent; each retries a 503 for up to ``patience_s``."""

    async def sender(session: aiohttp.ClientSession) -> None:
        while not stop.is_set() and load.sent < limit:
            event = next(events)
            load.sent += 1
            give_up_at = time.monotonic() + patience_s
            while True:
                sent = time.monotonic()
                status = await p.post_nexus(session, event)
                load.answers.append(Answer(sent, time.monotonic(), status))
                if status == 200:
                    load.acknowledged.add(str(event["id"]))
                    break
                assert status == 503, f"{status} for a valid webhook"
                if time.monotonic() >= give_up_at:
                    load.given_up.append(str(event["id"]))
                    break
                await asyncio.sleep(RETRY_PAUSE_S)
            await asyncio.sleep(pause_s)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(sender(session) for _ in range(senders)))


async def sent_at_least(load: Load, n: int, timeout: float = 120) -> None:
    async def sent() -> int:
        return load.sent

    await eventually(sent, lambda got: got >= n, timeout=timeout, what=f"{n} webhooks sent")


async def describe(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """The partitions of ``topic`` as the cluster describes them (leader, isr, ...)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        partitions: list[dict[str, Any]] = described["partitions"]
        return partitions
    finally:
        await admin.close()


async def leader_of(bootstrap: str, topic: str, partition: int = 0) -> int:
    leaders = {p["partition"]: p["leader"] for p in await describe(bootstrap, topic)}
    return int(leaders[partition])


async def fully_in_sync(bootstrap: str, topics: list[str], replicas: int = 3) -> None:
    """Wait until every partition of ``topics`` has ``replicas`` in-sync replicas."""

    async def isr() -> list[int]:
        sizes = []
        for topic in topics:
            sizes += [len(p["isr"]) for p in await describe(bootstrap, topic)]
        return sizes

    await eventually(
        isr, lambda sizes: bool(sizes) and min(sizes) == replicas, timeout=180,
        what=f"{replicas} in-sync replicas for every partition of {topics}",
    )  # fmt: skip


async def raw_ids(p: Pipeline) -> Counter[str]:
    """Event ids in the raw topic, read back from the earliest offset, with repeats."""
    records = await read_all(p.bootstrap, p.topic("webhooks.raw"))
    return Counter(str(orjson.loads(r.value)["id"]) for r in records)


def lost(load: Load, in_topic: Counter[str]) -> set[str]:
    """Webhooks answered 200 that the topic does not hold."""
    return load.acknowledged - set(in_topic)
