"""The Faust agents: they read, call the pure functions, write. No business logic here.

* ``normaliser``: ``webhooks.raw`` -> canonical events keyed by address to
  ``email.events`` and by message id to ``message.events``; anything it cannot parse or
  map goes to ``webhooks.dlq`` with the reason. A worker never dies of bad input.
  An operator's manual action (provider ``admin``) goes to ``email.events`` only, as a
  ``ManualAction`` marked by the ``mailpulse.value_type`` header.
* ``addresses``: ``email.events`` (canonical events and manual actions) -> the
  ``addresses`` table, and suppression commands to the compacted
  ``suppression.commands`` topic. The table's changelog record is written only after the
  broker acknowledged the event's commands, so a crash can repeat a command but never
  lose one.
* ``messages``: ``message.events`` -> the ``messages`` table (manual actions are ignored).

The two stateful agents ack their events themselves, through ``OrderedWriter``
(processors/runtime/writer.py): an event's offset is committed only once its commands and its
changelog record are on the broker. Every agent takes its records through an
``OffsetGuard`` (processors/runtime/offsets.py): in offset order per partition, with no hole.
Each event is applied inside Faust's stream iteration, because the RocksDB store files a
key under the *current* event's partition.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import faust
import structlog

from processors.errors import NormaliseError
from processors.generations import generation_topics
from processors.metrics import ProcessorMetrics
from processors.normalise import is_manual_action, normalise, normalise_manual_action
from processors.runtime.offsets import CommittedOffsets, OffsetGuard, keep_every_fetched_record
from processors.runtime.writer import OrderedWriter
from processors.settings import ProcessorSettings
from processors.transitions import apply_address_event, apply_manual_action, apply_message_event
from schemas.commands import (
    MANUAL_ACTION_VALUE_TYPE,
    VALUE_TYPE_HEADER,
    ManualAction,
    SuppressionCommand,
)
from schemas.dlq import DlqRaw, DlqRecord
from schemas.events import CanonicalEvent
from schemas.raw import RawWebhook
from schemas.state import AddressState, MessageState

log = structlog.get_logger("processors")


def _raw_topic(app: faust.App, name: str, partitions: int | None = None) -> faust.TopicT:
    # Keys and values are bytes everywhere: we (de)serialise with pydantic ourselves, so
    # every reader of a topic or table agrees on the bytes (DESIGN.md §6, table_route).
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def _text_headers(headers: Any) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    return {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for k, v in items}


def _is_manual_action(event: faust.EventT[bytes]) -> bool:
    return _text_headers(event.message.headers).get(VALUE_TYPE_HEADER) == MANUAL_ACTION_VALUE_TYPE


def _key_value(event: faust.EventT[bytes]) -> tuple[bytes, bytes]:
    key, value = event.message.key, event.message.value
    if not key or value is None:
        raise ValueError("a record without a key or without a value")
    return key, value


_MANUAL_ACTION_HEADERS = [(VALUE_TYPE_HEADER, MANUAL_ACTION_VALUE_TYPE.encode())]


@dataclass
class Topology:
    """Every topic and table of one generation, named explicitly."""

    raw: faust.TopicT
    email_events: faust.TopicT
    message_events: faust.TopicT
    dlq: faust.TopicT
    suppression: faust.TopicT
    addresses: Any  # faust.Table[bytes, bytes]
    messages: Any

    @classmethod
    def declare(cls, app: faust.App, settings: ProcessorSettings) -> Topology:
        t = settings.topics
        names = generation_topics(settings)
        parts = t.partitions

        def table(name: str) -> Any:
            # bytes key and value types make Faust use the "raw" codec for the changelog.
            return app.Table(name, default=None, partitions=parts, key_type=bytes, value_type=bytes)

        return cls(
            raw=_raw_topic(app, names.raw),
            email_events=_raw_topic(app, names.email_events, parts),
            message_events=_raw_topic(app, names.message_events, parts),
            dlq=_raw_topic(app, names.dlq),
            suppression=_raw_topic(app, names.suppression),
            addresses=table("addresses"),
            messages=table("messages"),
        )


def register_agents(
    app: faust.App, topo: Topology, settings: ProcessorSettings, metrics: ProcessorMetrics
) -> None:
    """Attach the three agents to ``app``."""
    policy = settings.policy
    options = settings.normalise
    committed = CommittedOffsets(settings.bootstrap_servers, settings.group_id)

    def guard(name: str) -> OffsetGuard:
        # Called as each agent starts, before the consumer's fetch loop runs.
        keep_every_fetched_record(app.consumer)
        return OffsetGuard(app.consumer, committed, name)

    async def send_to_dlq(event: faust.EventT[bytes], stage: str, reason: str, detail: str) -> None:
        message = event.message
        record = DlqRecord(
            reason=reason,
            error=detail[:2000],
            stage=stage,
            failed_at=datetime.now(UTC),
            raw=DlqRaw(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key.decode("utf-8", "replace") if message.key else None,
                headers=_text_headers(message.headers),
                body_b64=base64.b64encode(message.value or b"").decode(),
            ),
        )
        await topo.dlq.send(key=message.key, value=record.model_dump_json().encode())
        metrics.dlq.labels(stage, reason).inc()
        log.warning(
            "sent_to_dlq",
            stage=stage,
            reason=reason,
            partition=message.partition,
            offset=message.offset,
        )

    async def normalise_one(event: faust.EventT[bytes]) -> None:
        message = event.message
        manual: ManualAction | None = None
        canonical: list[CanonicalEvent] = []
        try:
            if message.value is None:
                raise ValueError("a raw record without a value")
            raw = RawWebhook.from_kafka(
                message.value, message.headers or [], message.partition, message.offset
            )
            if is_manual_action(raw):
                manual = normalise_manual_action(raw, options)
            else:
                canonical = normalise(raw, options)
        except NormaliseError as exc:
            await send_to_dlq(event, "normalise", exc.reason, exc.detail)
            return
        except (KeyError, ValueError) as exc:  # headers missing or unreadable
            await send_to_dlq(event, "normalise", "invalid_raw_record", repr(exc))
            return
        except Exception as exc:  # a mapper bug must not kill the worker
            log.exception("normaliser_bug", partition=message.partition, offset=message.offset)
            await send_to_dlq(event, "normalise", "internal_error", repr(exc))
            return
        if manual is not None:
            await topo.email_events.send(
                key=manual.address.encode(),
                value=manual.model_dump_json().encode(),
                headers=_MANUAL_ACTION_HEADERS,
            )
            metrics.normalised.labels(raw.provider).inc()
        for ce in canonical:
            value = ce.model_dump_json().encode()
            await topo.email_events.send(key=ce.recipient.encode(), value=value)
            if ce.message_id:
                await topo.message_events.send(key=ce.message_id.encode(), value=value)
        metrics.normalised.labels(raw.provider).inc(len(canonical))

    @app.agent(topo.raw, name="normaliser")
    async def normaliser(stream: faust.StreamT[bytes]) -> None:
        # Acked by hand, after the sends were handed to the producer (which Faust flushes
        # before it commits), and only for records the offset guard admitted.
        manual_acks = cast(faust.Stream[bytes], stream).noack()
        async with guard("normaliser") as offsets:
            async for event in manual_acks.events():
                if await offsets.admit(event):
                    await normalise_one(event)
                    await manual_acks.ack(event)

    @app.agent(topo.email_events, name="addresses")
    async def addresses(stream: faust.StreamT[bytes]) -> None:
        async with OrderedWriter(app, topo.addresses, stream, guard("addresses")) as writer:
            async for event in writer.events():
                manual = _is_manual_action(event)
                try:
                    key, value = _key_value(event)
                    parsed = (ManualAction if manual else CanonicalEvent).model_validate_json(value)
                except ValueError as exc:  # pydantic's ValidationError is one
                    reason = "invalid_manual_action" if manual else "invalid_canonical_event"
                    await send_to_dlq(event, "addresses", reason, str(exc))
                    await writer.skip(event)
                    continue
                stored = topo.addresses.get(key)
                state = AddressState.model_validate_json(stored) if stored else None
                if isinstance(parsed, ManualAction):
                    new_state, commands = apply_manual_action(state, parsed, policy)
                else:
                    new_state, commands = apply_address_event(state, parsed, policy)
                if new_state == state:
                    metrics.duplicates.labels("addresses").inc()
                    await writer.skip(event)
                    continue
                acks = [await publish_command(command) for command in commands]
                await writer.write(event, key, new_state.model_dump_json().encode(), acks)
                metrics.applied.labels("addresses").inc()

    async def publish_command(command: SuppressionCommand) -> Awaitable[Any]:
        # The writer awaits the broker's ack before the table's changelog write
        # (DESIGN.md §3); the next event does not wait for it.
        ack = await topo.suppression.send(
            key=command.address.encode(), value=command.model_dump_json().encode()
        )
        metrics.commands.labels(command.change.action).inc()
        log.info(
            "suppression_command",
            address=command.address,
            action=command.change.action,
            scope=command.change.scope,
            reason=command.change.reason,
            command_id=command.command_id,
        )
        return ack

    @app.agent(topo.message_events, name="messages")
    async def messages(stream: faust.StreamT[bytes]) -> None:
        async with OrderedWriter(app, topo.messages, stream, guard("messages")) as writer:
            async for event in writer.events():
                if _is_manual_action(event):  # they concern addresses, not messages
                    await writer.skip(event)
                    continue
                try:
                    key, value = _key_value(event)
                    ce = CanonicalEvent.model_validate_json(value)
                except ValueError as exc:  # pydantic's ValidationError is one
                    await send_to_dlq(event, "messages", "invalid_canonical_event", str(exc))
                    await writer.skip(event)
                    continue
                stored = topo.messages.get(key)
                state = MessageState.model_validate_json(stored) if stored else None
                new_state = apply_message_event(state, ce, policy)
                if new_state == state:
                    metrics.duplicates.labels("messages").inc()
                    await writer.skip(event)
                    continue
                await writer.write(event, key, new_state.model_dump_json().encode())
                metrics.applied.labels("messages").inc()
