"""The delivery agent: canonical events and suppression commands -> deliveries.

It reads ``email.events`` (batches, manual actions, single events: as the address agent
does) and ``suppression.commands`` (same partitioning: both are keyed by address), and
for each event of a subscribed type writes one pending delivery per active endpoint
subscribed to it, unless that delivery exists already (its id is uuid5 of endpoint and
event: a replay, a restart or a rebalance creates nothing twice). The writes go through
an ``OrderedWriter``: a record is acked once its deliveries are in the changelog, and
the scheduler attempts a delivery only once it is durable. No HTTP here: an endpoint
that is slow or down costs this agent nothing.

Before the endpoints are read for a record, the subscription view is synced past the
record's time (``SubscriptionView.covers``), so an endpoint registered before an event
was received gets it, whichever worker took the registration.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust
import structlog
from pydantic import ValidationError

from processors.agents import decode_inputs
from processors.metrics import ProcessorMetrics
from processors.runtime.inflight import InFlight
from processors.runtime.offsets import (
    CommittedOffsets,
    OffsetGuard,
    PresentOffsets,
    keep_every_fetched_record,
)
from processors.runtime.produce import changelog as changelog_of
from processors.runtime.store import TableStore
from processors.runtime.writer import OrderedWriter
from processors.webhooks import deliveries as d
from processors.webhooks.keys import record_key
from processors.webhooks.scheduler import DeliveryScheduler
from processors.webhooks.view import SubscriptionView
from schemas.commands import SuppressionCommand
from schemas.events import CanonicalEvent
from schemas.webhooks import DeliveryRecord

log = structlog.get_logger("processors.webhooks")


class Sequencer:
    """Arrival order of deliveries: strictly increasing on this worker, and close to the
    wall clock so that a partition moved to another worker keeps its order."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        self._last = max(self._last + 1, time.time_ns())
        return self._last


def triggers(event: faust.EventT[bytes], commands_topic: str) -> list[d.Trigger]:
    message = event.message
    if message.topic == commands_topic:
        try:
            command = SuppressionCommand.model_validate_json(message.value or b"")
        except ValidationError:
            log.warning(
                "webhook_command_skipped", partition=message.partition, offset=message.offset
            )
            return []
        published = datetime.fromtimestamp(message.timestamp, UTC)
        return [d.command_trigger(command, published)]
    found = []
    for item in decode_inputs(event):
        if isinstance(item, CanonicalEvent):
            trigger = d.event_trigger(item)
            if trigger is not None:
                found.append(trigger)
    return found


def plan(
    store: TableStore,
    view: SubscriptionView,
    partition: int,
    found: Sequence[d.Trigger],
    horizon_s: float,
    seq: Sequencer,
) -> list[DeliveryRecord]:
    """The deliveries ``found`` calls for that the table does not hold yet."""
    now = datetime.now(UTC)
    records: dict[bytes, DeliveryRecord] = {}
    for trigger in found:
        for subscriber in view.registry.subscribers(trigger.type):
            if not d.wanted_by(trigger, subscriber, now, horizon_s):
                continue
            key = record_key(
                subscriber.webhook_id, d.delivery_id(subscriber.webhook_id, trigger.event_id)
            )
            if key in records or store.get(partition, key) is not None:
                continue  # created before: a replay, a repeat after a crash, a retry
            records[key] = d.new_delivery(trigger, subscriber.webhook_id, partition, seq(), now)
    return list(records.values())


def register_delivery_agent(
    app: faust.App,
    table: Any,
    email_events: str,
    commands: str,
    view: SubscriptionView,
    scheduler: DeliveryScheduler,
    committed: CommittedOffsets,
    present: PresentOffsets,
    horizon_s: float,
    metrics: ProcessorMetrics,
) -> None:
    topic = app.topic(
        email_events,
        commands,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    seq = Sequencer()

    @app.agent(topic, name="webhooks")
    async def webhooks(stream: faust.StreamT[bytes]) -> None:
        keep_every_fetched_record(app.consumer)
        # The commands topic is compacted: a hole there is compaction or a record Faust
        # dropped, and the guard asks the broker which (a dropped command would never
        # make its deliveries, and a compaction hole would stall the commits for good).
        guard = OffsetGuard(
            app.consumer,
            committed,
            "webhooks",
            frozenset({email_events}),
            compacted=frozenset({commands}),
            present=present,
            inflight=InFlight.of(app),
        )
        store = TableStore(table)
        writer = OrderedWriter(
            app, store, changelog_of(app, table), stream, guard, on_persisted=scheduler.on_persisted
        )
        async with writer:
            scheduler.attach(store, writer)
            try:
                async for event in writer.events():
                    await view.covers(event.message.timestamp)
                    if view.registry.any_active():
                        found = triggers(event, commands)
                        partition = event.message.partition
                        records = plan(store, view, partition, found, horizon_s, seq)
                        if records:
                            writes = [w for r in records for w in d.creation_writes(r)]
                            await writer.write(event, writes, last=False)
                            for record in records:
                                metrics.webhook_deliveries.labels(record.type).inc()
                    await writer.skip(event)
            finally:
                scheduler.detach(writer)
                await present.close()
