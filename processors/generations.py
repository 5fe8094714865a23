"""Which generation of state is live: one record per app on a compacted control topic.

A generation is one complete set of state (consumer group ``{app_id}-{generation}``, its
changelog topics, its data directory). Exactly one generation per app is *active*: its
workers publish suppression commands to the live ``suppression.commands`` topic. Workers
of any other generation (a rebuild in progress) run in *shadow*: same agents and tables,
but their hops, DLQ and commands go to ``<topic>.<generation>``, so replaying history can
never push old suppression states over the live ones (see ``generation_topics``).
``mailpulse rebuild switch`` moves the active mark once the new generation matches.

The first worker of an app to start when no record exists claims its own generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import AwareDatetime, BaseModel, ConfigDict

from processors.ops.kafkaio import latest_by_key, read_all
from processors.settings import ProcessorSettings
from schemas.topics import COMPACTED_CONFIG, TopicSpec, ensure_topics


class ActiveGeneration(BaseModel):
    """Value of the control record ``<app_id>/active_generation``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    generation: str
    since: AwareDatetime
    previous: str | None = None


def control_spec(settings: ProcessorSettings) -> TopicSpec:
    t = settings.topics
    return TopicSpec(
        t.name(t.control), 1, t.replication_factor, COMPACTED_CONFIG, t.min_insync_replicas
    )


def _key(settings: ProcessorSettings) -> bytes:
    return f"{settings.app_id}/active_generation".encode()


async def read_active(settings: ProcessorSettings) -> ActiveGeneration | None:
    """The active generation of ``settings.app_id``, or None if none was ever claimed."""
    t = settings.topics
    records = await read_all(settings.bootstrap_servers, t.name(t.control))
    value = latest_by_key(records).get(_key(settings))
    return ActiveGeneration.model_validate_json(value) if value else None


async def write_active(
    settings: ProcessorSettings, generation: str, previous: str | None
) -> ActiveGeneration:
    """Mark ``generation`` active (acks=all; the control topic exists) and return the record."""
    record = ActiveGeneration(generation=generation, since=datetime.now(UTC), previous=previous)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        t = settings.topics
        value = orjson.dumps(record.model_dump(mode="json"))
        await producer.send_and_wait(t.name(t.control), key=_key(settings), value=value)
    finally:
        await producer.stop()
    return record


async def resolve_active(settings: ProcessorSettings) -> str:
    """The active generation; claims ``settings.generation`` when none is recorded yet."""
    await ensure_topics(settings.bootstrap_servers, [control_spec(settings)])
    current = await read_active(settings)
    if current is None:
        await write_active(settings, settings.generation, previous=None)
        current = await read_active(settings)  # two first workers may race: last one wins
    assert current is not None
    return current.generation


@dataclass(frozen=True)
class GenerationTopics:
    """The topics one generation's workers read and write."""

    raw: str
    email_events: str
    message_events: str
    dlq: str
    suppression: str

    @property
    def inputs(self) -> list[str]:
        return [self.raw, self.email_events, self.message_events]

    @property
    def outputs(self) -> list[str]:
        return [self.email_events, self.message_events, self.dlq, self.suppression]


def generation_topics(
    settings: ProcessorSettings, *, shadow: bool | None = None
) -> GenerationTopics:
    """Live names for the active generation; ``<name>.<generation>`` for a shadow one.

    A shadow generation shares only the raw log with the live one: its hops, DLQ and
    commands are its own, so a rebuild neither feeds the live agents nor repeats the live
    DLQ or command history.
    """
    t = settings.topics
    suffix = f".{settings.generation}" if (settings.shadow if shadow is None else shadow) else ""
    return GenerationTopics(
        raw=t.name(t.raw),
        email_events=t.name(t.email_events) + suffix,
        message_events=t.name(t.message_events) + suffix,
        dlq=t.name(t.dlq) + suffix,
        suppression=t.name(t.suppression) + suffix,
    )
