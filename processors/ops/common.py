"""What the operator commands share: their error, running them, the processors' consumer
group as the broker describes it, and argument types."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError

from processors.errors import ProcessorError
from processors.generations import read_active
from processors.ops.kafkaio import _stop_quietly
from processors.ops.progress import progress
from processors.settings import ProcessorSettings, load_settings


class OpsError(ProcessorError):
    """An operator-facing failure (refusal, bad target, broker problem): one clear line,
    no traceback, exit status 1."""


def run_command(name: str, main: Callable[[ProcessorSettings], Coroutine[Any, Any, int]]) -> int:
    """Load the processors' settings and run ``main`` with them; operator-facing errors
    (bad settings, refusals, broker unreachable) become one message and exit status 1."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"mailpulse {name}: invalid processors settings:\n{exc}", file=sys.stderr)
        return 1
    return one_line_errors(name, lambda: asyncio.run(_in_generation(settings, main)))


def one_line_errors(
    name: str, run: Callable[[], int], expected: tuple[type[Exception], ...] = (OpsError,)
) -> int:
    """``run()``; an ``expected`` error or the broker's becomes one line on stderr and
    exit status 1."""
    try:
        return run()
    except expected as exc:
        print(f"mailpulse {name}: {exc}", file=sys.stderr)
    except KafkaConnectionError as exc:
        print(f"mailpulse {name}: cannot reach the Kafka broker: {exc}", file=sys.stderr)
    except KafkaError as exc:
        print(f"mailpulse {name}: Kafka error: {exc!r}", file=sys.stderr)
    return 1


async def _in_generation(
    settings: ProcessorSettings, main: Callable[[ProcessorSettings], Coroutine[Any, Any, int]]
) -> int:
    """Run ``main`` with ``settings.shadow`` as the workers of this generation have it."""
    active = await read_active(settings)
    shadow = active is not None and active.generation != settings.generation
    return await main(settings.model_copy(update={"shadow": shadow}))


def iso_datetime(text: str) -> datetime:
    """argparse type: an ISO 8601 date-time; without an offset it is read as UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date-time (e.g. 2026-05-14T09:00:00Z)"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True)
class GroupInfo:
    """A consumer group as the coordinator describes it."""

    group: str
    state: str
    members: tuple[str, ...]  # "client_id@host" of each live member

    @property
    def active(self) -> bool:
        """True while any consumer is (or is becoming) a member: offsets must not move."""
        return bool(self.members) or self.state not in ("Empty", "Dead")

    def describe(self) -> str:
        who = ", ".join(self.members) or "none"
        return f"group {self.group} is {self.state} with {len(self.members)} member(s): {who}"


async def describe_group(bootstrap: str, group: str) -> GroupInfo:
    """State and live members of ``group`` ("Dead" when the broker never saw it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    for response in responses:
        for g in response.to_object()["groups"]:
            if g["group"] != group:
                continue
            if g["error_code"]:
                raise OpsError(f"cannot describe group {group}: error code {g['error_code']}")
            members = tuple(f"{m['client_id']}@{m['client_host']}" for m in g["members"])
            return GroupInfo(group, str(g["state"]), members)
    raise OpsError(f"the broker did not describe group {group}")


async def refuse_if_active(bootstrap: str, group: str, what: str) -> GroupInfo:
    """Describe ``group``; raise ``OpsError`` when it has live members."""
    info = await describe_group(bootstrap, group)
    if info.active:
        raise OpsError(
            f"refusing to {what}: {info.describe()}. Stop every processors worker of "
            f"this generation first (and check with: mailpulse-kafka tool consumer-groups "
            f"-- --bootstrap-server {bootstrap} --describe --group {group})."
        )
    return info


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """Partitions of ``topic``; ``OpsError`` if it does not exist (never auto-creates it)."""
    # All topics' metadata: asking for a missing topic by name can auto-create it.
    metadata = await consumer._client.fetch_all_metadata()
    partitions = metadata.partitions_for_topic(topic)
    if not partitions:
        raise OpsError(f"topic {topic} does not exist (check the topic prefix in the settings)")
    return sorted(partitions)


async def records_since(
    bootstrap: str, topic: str, since: datetime, label: str
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` appended at or after ``since``, up to the end offsets as
    they are now, with a progress bar (``label``). ``OpsError`` if the topic is missing."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await topic_partitions(consumer, topic)]
        consumer.assign(tps)
        starts = await consumer.offsets_for_times({tp: epoch_ms(since) for tp in tps})
        ends = await consumer.end_offsets(tps)
        first: dict[TopicPartition, int] = {}
        for tp in tps:
            start = starts[tp]
            if start is not None and start.offset < ends[tp]:
                consumer.seek(tp, start.offset)
                first[tp] = start.offset
        pending, read = set(first), 0
        with progress(label, sum(ends[tp] - o for tp, o in first.items())) as bar:
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=500)
                for tp, records in batch.items():
                    for record in records:
                        if record.offset < ends[tp]:
                            read += 1
                            yield record
                bar.update(read)
                pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await _stop_quietly(consumer)
