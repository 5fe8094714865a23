"""Event-to-command latency: hard bounces at a fixed rate (open loop) into a caught-up
pipeline, timed from each record's *scheduled* send to its suppression command's arrival."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.proc_kafka import Broker
from bench.proc_workload import raw_record

DRAIN_S = 30.0


@dataclass
class Latency:
    rate: float
    seconds: float
    sent: int = 0
    received: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds
    send_lag: list[float] = field(default_factory=list)  # actual - scheduled send, seconds

    def pct(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(self.latencies if values is None else values)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, round(q / 100 * (len(data) - 1)))]


def _event(i: int, address: str, scheduled_wall: float) -> dict[str, object]:
    at = datetime.fromtimestamp(scheduled_wall, UTC)
    stamp = at.isoformat().replace("+00:00", "Z")
    return {
        "id": f"evt_lat_{i:08d}",
        "type": "bounced.hard",
        "created_at": stamp,
        "data": {
            "message_id": f"msg_lat_{i:08d}@mta.example.net",
            "email": address,
            "timestamp": stamp,
            "bounce_code": "550",
            "bounce_reason": "5.1.1 The email account that you tried to reach does not exist",
            # The scheduled send time travels in the event, as the brief asks.
            "correlation_id": f"sched:{scheduled_wall:.6f}",
        },
    }


async def measure(
    broker: Broker,
    raw: str,
    commands: str,
    *,
    rate: float,
    seconds: float,
    tag: str,
    partitions: int,
) -> Latency:
    """Send ``rate * seconds`` hard bounces (unique addresses) and time their commands."""
    result = Latency(rate, seconds)
    total = round(rate * seconds)
    addresses = [f"lat{tag}-{i:07d}@latency.example.com" for i in range(total)]
    index = {a.encode(): i for i, a in enumerate(addresses)}
    scheduled = [0.0] * total
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    await consumer.start()
    await producer.start()
    try:
        tps = await broker.tps(commands)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve now, not after the first command arrived
        # Offsets between wall clock (embedded in events) and the monotonic timer.
        wall0, mono0 = time.time(), time.perf_counter()
        start = mono0 + 0.5

        async def send() -> None:
            acks = []
            for i, address in enumerate(addresses):
                at = start + i / rate
                scheduled[i] = at
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                result.send_lag.append(time.perf_counter() - at)
                event = _event(i, address, wall0 + at - mono0)
                rec = raw_record(event, address, datetime.now(UTC), partitions)
                ack = await producer.send(
                    raw, value=rec.value, key=rec.key, headers=rec.headers, partition=rec.partition
                )
                acks.append(ack)
                result.sent += 1
            await asyncio.gather(*acks)

        sender = asyncio.create_task(send())
        seen: set[int] = set()
        deadline = start + seconds + DRAIN_S
        while len(seen) < total and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for part in batch.values():
                for r in part:
                    i = index.get(r.key or b"", -1)
                    if i >= 0 and i not in seen:
                        seen.add(i)
                        result.latencies.append(now - scheduled[i])
        await sender
        result.received = len(seen)
    finally:
        await producer.stop()
        await consumer.stop()
    return result
