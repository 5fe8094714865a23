"""The Faust agents: they read, call the pure functions, write. No business logic here.

* ``normaliser``: ``webhooks.raw`` -> canonical events, in batch records per partition
  (processors/hops.py), to ``email.events`` partitioned by address and to
  ``message.events`` partitioned by message id; anything it cannot parse or map goes to
  ``webhooks.dlq`` with the reason. A worker never dies of bad input. An operator's
  manual action (provider ``admin``) goes to ``email.events`` only, as one
  ``ManualAction`` record; the ``mailpulse.value_type`` header says which a record is.
* ``addresses``: ``email.events`` (canonical events and manual actions) -> the
  ``addresses`` table, and suppression commands to the compacted
  ``suppression.commands`` topic. The table's changelog record is written only after the
  broker acknowledged the event's commands, so a crash can repeat a command but never
  lose one.
* ``messages``: ``message.events`` -> the ``messages`` table (manual actions are ignored).

The stateful agents call the pure step (processors/step.py) for each input of a record
(every event of a batch) and write what it says: the state record plus its index
entries (dedupe keys, the suppression list; key layout in processors/keys.py). An input
that is not valid, whose step fails (``transition_error``) or whose record would exceed
``max_record_bytes`` (``state_too_large``) goes to the DLQ, alone, and the agent goes on:
one key never stops the others.

The two stateful agents ack their events themselves, through ``OrderedWriter``
(processors/runtime/writer.py): an event's offset is committed only once its commands and its
changelog record are on the broker. Every agent takes its records through an
``OffsetGuard`` (processors/runtime/offsets.py): in offset order per partition, with no hole.
Each event is applied inside Faust's stream iteration, because the RocksDB store files a
key under the *current* event's partition.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any, Protocol, TypeVar, cast

import faust
import structlog

from processors.dedupe import SeenLookup
from processors.generations import generation_topics
from processors.hops import BadItem, Batches, decode_batch
from processors.keys import dedupe_entry
from processors.metrics import ProcessorMetrics
from processors.runtime.batcher import Hop, HopBatcher
from processors.runtime.commits import RefusedCommits
from processors.runtime.inflight import InFlight
from processors.runtime.offsets import (
    CommittedOffsets,
    OffsetGuard,
    end_offset,
    keep_every_fetched_record,
)
from processors.runtime.produce import DirectTopic
from processors.runtime.produce import changelog as changelog_of
from processors.runtime.store import ParsedCache, TableStore
from processors.runtime.writer import OrderedWriter
from processors.settings import ProcessorSettings
from processors.step import (
    AddressOutcome,
    MessageOutcome,
    Rejected,
    address_step,
    message_step,
    normalise_record,
)
from schemas.commands import (
    EVENT_BATCH_VALUE_TYPE,
    MANUAL_ACTION_VALUE_TYPE,
    VALUE_TYPE_HEADER,
    ManualAction,
    SuppressionCommand,
)
from schemas.dlq import DlqRaw, DlqRecord
from schemas.events import CanonicalEvent
from schemas.state import AddressState, MessageState

log = structlog.get_logger("processors")


class _Outcome(Protocol):
    """What the agents read of a step's outcome (processors/step.py)."""

    @property
    def changed(self) -> bool: ...

    @property
    def state(self) -> AddressState | MessageState: ...


Out = TypeVar("Out", bound=_Outcome)


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


def _value_type(event: faust.EventT[bytes]) -> str | None:
    return _text_headers(event.message.headers).get(VALUE_TYPE_HEADER)


def _behind(app: faust.App, event: faust.EventT[bytes]) -> bool:
    """Whether the broker holds later records of ``event``'s partition (a backlog)."""
    message = event.message
    end = end_offset(app.consumer, message.tp)
    return end is not None and end > message.offset + 1


class KeyPartition:
    """The partition a keyed record of ``topic`` gets (the producer's default
    partitioner over the topic's partitions as the consumer's metadata has them).

    The partitioner is murmur2 in pure Python (about 10 µs a key, two keys per canonical
    event) and busy keys come again and again, so results are kept for up to
    ``cache_size`` keys. A cached partition is only served while the topic has the
    partition count it was computed for, as the consumer group's metadata has it (a key's
    partition depends on nothing else); the cache is emptied when full, which keeps it
    bounded without per-hit bookkeeping.
    """

    def __init__(self, app: faust.App, topic: str, cache_size: int = 100_000) -> None:
        self._consumer = app.consumer
        self._topic = topic
        self._cache_size = cache_size
        self._cache: dict[bytes, int] = {}
        self._cached_for: int | None = None  # the partition count the cache is valid for

    def __call__(self, key: bytes) -> int:
        count: int | None = self._consumer.topic_partitions(self._topic)
        if count != self._cached_for or len(self._cache) >= self._cache_size:
            self._cache, self._cached_for = {}, count
        partition = self._cache.get(key)
        if partition is not None:
            return partition
        partition = self._consumer.key_partition(self._topic, key)
        if partition is None:
            raise RuntimeError(f"no metadata for {self._topic}: a key has no partition yet")
        if count is not None:
            self._cache[key] = partition
        return partition

    async def known(self, timeout_s: float = 60.0) -> None:
        """Wait until the consumer's metadata has the topic (it subscribes to it)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._consumer.key_partition(self._topic, b"") is None:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"no metadata for {self._topic} after {timeout_s:.0f} s")
            await asyncio.sleep(0.1)


Input = CanonicalEvent | ManualAction | BadItem


def decode_inputs(event: faust.EventT[bytes]) -> Sequence[Input]:
    """What a hop record carries: a batch of events, one manual action, or one event."""
    value, kind = event.message.value or b"", _value_type(event)
    if kind == EVENT_BATCH_VALUE_TYPE:
        return decode_batch(value)
    model = ManualAction if kind == MANUAL_ACTION_VALUE_TYPE else CanonicalEvent
    try:
        return [model.model_validate_json(value)]
    except ValueError as exc:  # pydantic's ValidationError is one
        if model is ManualAction:
            return [BadItem(value, str(exc), "invalid_manual_action")]
        return [BadItem(value, str(exc))]


def _address_key(item: CanonicalEvent | ManualAction) -> bytes:
    return (item.recipient if isinstance(item, CanonicalEvent) else item.address).encode()


_MANUAL_ACTION_HEADERS = [(VALUE_TYPE_HEADER, MANUAL_ACTION_VALUE_TYPE.encode())]


# The tables, by the names their changelogs carry ("<app id>-<name>-changelog").
TABLES = ("addresses", "messages")


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
            return app.Table(
                name,
                default=None,
                partitions=parts,
                key_type=bytes,
                value_type=bytes,
                extra_topic_configs=t.durability(),
            )

        return cls(
            raw=_raw_topic(app, names.raw),
            email_events=_raw_topic(app, names.email_events, parts),
            message_events=_raw_topic(app, names.message_events, parts),
            dlq=_raw_topic(app, names.dlq),
            suppression=_raw_topic(app, names.suppression),
            addresses=table(TABLES[0]),
            messages=table(TABLES[1]),
        )


def register_agents(
    app: faust.App, topo: Topology, settings: ProcessorSettings, metrics: ProcessorMetrics
) -> None:
    """Attach the three agents to ``app``."""
    policy = settings.policy
    options = settings.normalise

    def direct(topic: faust.TopicT) -> DirectTopic:
        return DirectTopic(app, topic.get_topic_name())

    committed = CommittedOffsets(settings.bootstrap_servers, settings.group_id)
    # Each counter's children looked up once per label values (a few providers, tables,
    # actions): ``labels()`` takes a lock and checks its arguments on every call.
    normalised_of, applied_of = cache(metrics.normalised.labels), cache(metrics.applied.labels)
    duplicates_of, commands_of = cache(metrics.duplicates.labels), cache(metrics.commands.labels)
    # What the agents write, sent straight to the producer (processors/runtime/produce.py).
    dlq, suppression = direct(topo.dlq), direct(topo.suppression)
    email_events, message_events = direct(topo.email_events), direct(topo.message_events)
    by_address = KeyPartition(app, email_events.name)
    by_message = KeyPartition(app, message_events.name)
    max_batch = settings.hop_batch_max_bytes
    to_addresses = Hop(email_events, Batches(by_address, max_batch))
    to_messages = Hop(message_events, Batches(by_message, max_batch))

    def guard(name: str, topic: faust.TopicT) -> OffsetGuard:
        # Called as each agent starts, before the consumer's fetch loop runs.
        keep_every_fetched_record(app.consumer)
        RefusedCommits.of(app.consumer)
        return OffsetGuard(
            app.consumer, committed, name, frozenset(topic.topics), inflight=InFlight.of(app)
        )

    async def send_to_dlq(
        event: faust.EventT[bytes],
        stage: str,
        reason: str,
        detail: str,
        item: tuple[bytes | None, bytes] | None = None,
    ) -> None:
        """``event``'s record to the DLQ, or only ``item`` (key, body): one input of it."""
        message = event.message
        key, body = item if item is not None else (message.key, message.value or b"")
        headers = {} if item is not None else _text_headers(message.headers)
        record = DlqRecord(
            reason=reason,
            error=detail[:2000],
            stage=stage,
            failed_at=datetime.now(UTC),
            raw=DlqRaw(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=key.decode("utf-8", "replace") if key else None,
                headers=headers,
                body_b64=base64.b64encode(body).decode(),
            ),
        )
        await dlq.send(key=key, value=record.model_dump_json().encode())
        metrics.dlq.labels(stage, reason).inc()
        log.warning(
            "sent_to_dlq",
            stage=stage,
            reason=reason,
            partition=message.partition,
            offset=message.offset,
        )

    async def normalise_one(event: faust.EventT[bytes], out: HopBatcher) -> None:
        message = event.message
        try:
            result = normalise_record(
                message.value, message.headers or [], message.partition, message.offset, options
            )
        except Exception as exc:  # a mapper bug must not kill the worker
            log.exception("normaliser_bug", partition=message.partition, offset=message.offset)
            await send_to_dlq(event, "normalise", "internal_error", repr(exc))
            return
        if isinstance(result, Rejected):
            await send_to_dlq(event, "normalise", result.reason, result.detail)
            return
        if result.manual is not None:
            manual = result.manual
            key = manual.address.encode()
            await out.flush()  # the address's earlier events go first
            await email_events.send(
                key=key,
                value=manual.model_dump_json().encode(),
                partition=by_address(key),
                headers=_MANUAL_ACTION_HEADERS,
            )
            normalised_of(result.provider).inc()
        for ce in result.canonical:
            value = ce.model_dump_json().encode()
            out.add(to_addresses, ce.recipient.encode(), value)
            if ce.message_id:
                out.add(to_messages, ce.message_id.encode(), value)
        normalised_of(result.provider).inc(len(result.canonical))

    @app.agent(topo.raw, name="normaliser")
    async def normaliser(stream: faust.StreamT[bytes]) -> None:
        # Acked by hand, by the batcher once the record's events are handed to the
        # producer (which Faust flushes before it commits), and only for records the
        # offset guard admitted.
        manual_acks = cast(faust.Stream[bytes], stream).noack()
        for partition_of in (by_address, by_message):
            await partition_of.known()
        batcher = HopBatcher(
            app,
            [to_addresses, to_messages],
            manual_acks.ack,
            linger_s=settings.hop_batch_linger_s,
            max_records=settings.hop_batch_max_records,
            max_bytes=settings.hop_batch_max_bytes,
        )
        async with guard("normaliser", topo.raw) as offsets, batcher as out:
            async for event in manual_acks.events():
                if await offsets.admit(event):
                    await normalise_one(event, out)
                    await out.done(event, more_waiting=_behind(app, event))

    def address_outcome(
        store: TableStore,
        parsed_states: ParsedCache[AddressState],
        partition: int,
        key: bytes,
        item: CanonicalEvent | ManualAction,
    ) -> AddressOutcome:
        state = parsed_states.parse(key, store.get(partition, key))
        return address_step(state, item, policy, store_lookup(store, partition, key.decode()))

    def message_outcome(
        store: TableStore,
        parsed_states: ParsedCache[MessageState],
        partition: int,
        key: bytes,
        event: CanonicalEvent,
    ) -> MessageOutcome:
        state = parsed_states.parse(key, store.get(partition, key))
        return message_step(state, event, policy, store_lookup(store, partition, key.decode()))

    async def stored_step(
        event: faust.EventT[bytes],
        item: CanonicalEvent | ManualAction,
        table: str,
        key: bytes,
        parsed_states: ParsedCache[Any],
        step: Callable[[], Out],
    ) -> tuple[Out, bytes] | None:
        """Run the pure ``step`` and serialise its state; None if the input went to the DLQ.

        A step that raises (``transition_error``, a bug) or a record over
        ``max_record_bytes`` (``state_too_large``: the broker would refuse it, or it would
        grow without end) must not stop the other keys, nor crash the worker on every
        restart: the input goes to the DLQ and the agent goes on.
        """
        partition = event.message.partition
        try:
            outcome = step()
            state_value = b""  # a duplicate: nothing to store
            if outcome.changed:
                state_value = outcome.state.model_dump_json().encode()
        except Exception as exc:
            log.exception("transition_error", table=table, partition=partition)
            await send_to_dlq(
                event, table, "transition_error", repr(exc), dlq_part(event, key, item)
            )
            return None
        if len(state_value) > settings.max_record_bytes:
            problem = (
                f"{len(state_value)} bytes, over max_record_bytes = {settings.max_record_bytes}"
            )
            await send_to_dlq(event, table, "state_too_large", problem, dlq_part(event, key, item))
            return None
        if outcome.changed:
            parsed_states.put(key, state_value, outcome.state)
        (applied_of if outcome.changed else duplicates_of)(table).inc()
        return outcome, state_value

    @app.agent(topo.email_events, name="addresses")
    async def addresses(stream: faust.StreamT[bytes]) -> None:
        store = TableStore(topo.addresses)
        parsed_states = ParsedCache(AddressState.model_validate_json)
        changelog = changelog_of(app, topo.addresses)
        async with OrderedWriter(
            app, store, changelog, stream, guard("addresses", topo.email_events)
        ) as writer:
            async for event in writer.events():
                partition = event.message.partition
                for item in decode_inputs(event):
                    if isinstance(item, BadItem):
                        part = dlq_part(event, None, item)
                        await send_to_dlq(event, "addresses", item.reason, item.error, part)
                        continue
                    key = _address_key(item)
                    step = partial(address_outcome, store, parsed_states, partition, key, item)
                    stored = await stored_step(event, item, "addresses", key, parsed_states, step)
                    if stored is None:
                        continue
                    outcome, state_value = stored
                    writes = outcome.writes(state_value, partial(store.keys_with_prefix, partition))
                    acks = [await publish_command(command) for command in outcome.commands]
                    await writer.write(event, writes, acks, last=False)
                await writer.skip(event)

    async def publish_command(command: SuppressionCommand) -> Awaitable[Any]:
        # The writer awaits the broker's ack before the table's changelog write
        # (DESIGN.md §3); the next event does not wait for it.
        ack = await suppression.send(
            key=command.address.encode(), value=command.model_dump_json().encode()
        )
        commands_of(command.change.action).inc()
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
        store = TableStore(topo.messages)
        parsed_states = ParsedCache(MessageState.model_validate_json)
        changelog = changelog_of(app, topo.messages)
        async with OrderedWriter(
            app, store, changelog, stream, guard("messages", topo.message_events)
        ) as writer:
            async for event in writer.events():
                partition = event.message.partition
                for item in decode_inputs(event):
                    if isinstance(item, ManualAction):  # they concern addresses, not messages
                        continue
                    if isinstance(item, BadItem):
                        part = dlq_part(event, None, item)
                        await send_to_dlq(event, "messages", item.reason, item.error, part)
                        continue
                    if item.message_id is None:  # not sent here by the normaliser
                        continue
                    key = item.message_id.encode()
                    step = partial(message_outcome, store, parsed_states, partition, key, item)
                    stored = await stored_step(event, item, "messages", key, parsed_states, step)
                    if stored is None:
                        continue
                    outcome, state_value = stored
                    writes = outcome.writes(state_value, partial(store.keys_with_prefix, partition))
                    await writer.write(event, writes, last=False)
                await writer.skip(event)


def dlq_part(
    event: faust.EventT[bytes], key: bytes | None, item: Input
) -> tuple[bytes | None, bytes] | None:
    """The ``item`` argument of ``send_to_dlq`` for one failed input of ``event``: from a
    batch, that input alone (key, body); from a record of one input, None, which sends
    the record itself, headers and all."""
    if _value_type(event) != EVENT_BATCH_VALUE_TYPE:
        return None
    body = item.body if isinstance(item, BadItem) else item.model_dump_json().encode()
    return key, body


def store_lookup(store: TableStore, partition: int, owner: str) -> SeenLookup:
    """The dedupe index of ``owner``, read from the table's store (staged writes too)."""

    def seen(bucket: int, key: str) -> bool:
        return store.get(partition, dedupe_entry(owner, bucket, key)) is not None

    return seen
