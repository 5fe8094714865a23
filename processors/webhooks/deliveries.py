"""Delivery records and their transitions. Pure: time and randomness are parameters.

An event becomes one delivery per active endpoint subscribed to its type, with a
deterministic id (uuid5 of endpoint id and event id): the same event processed again
after a crash, a replay or a rebalance finds its delivery and creates nothing. An
endpoint gets the events the platform *received* after it was registered, and none
older than ``max_age_s`` (they could not be attempted any more).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from processors.runtime.store import Write
from processors.webhooks.keys import PRESENT, pending_key, record_key, time_key
from processors.webhooks.retry import AttemptResult, RetrySchedule, verdict
from schemas.commands import SuppressionCommand
from schemas.events import CanonicalEvent
from schemas.webhooks import DeliveryAttempt, DeliveryRecord, WebhookEventType, WebhookPayload

# uuid5 namespace of delivery ids (fixed forever: ids must not change across versions).
NAMESPACE = uuid.UUID("6f0b8f5e-8a57-5d2b-9a51-6d61696c7075")

# Canonical event type -> webhook event type; the others (sent, deferred, dropped) are
# not offered.
WEBHOOK_TYPE: dict[str, WebhookEventType] = {
    "opened": "email.open",
    "clicked": "email.click",
    "bounced.hard": "email.bounce",
    "bounced.soft": "email.bounce",
    "unsubscribed": "email.unsubscribe",
    "delivered": "email.delivered",
    "complained": "email.complaint",
}


def delivery_id(webhook_id: int, event_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{webhook_id}\x00{event_id}"))


@dataclass(frozen=True, slots=True)
class Trigger:
    """What an event or a suppression command says, as far as deliveries care."""

    type: WebhookEventType
    event_id: str
    address: str
    email_id: str | None
    occurred_at: datetime
    received_at: datetime  # which endpoints get it (registered before) and its age
    data: CanonicalEvent | SuppressionCommand


def event_trigger(event: CanonicalEvent) -> Trigger | None:
    kind = WEBHOOK_TYPE.get(event.type)
    if kind is None:
        return None
    return Trigger(
        kind,
        event.dedupe_key,
        event.recipient,
        event.message_id,
        event.occurred_at,
        event.received_at,
        event,
    )


def command_trigger(command: SuppressionCommand, published_at: datetime) -> Trigger:
    """``published_at``: when the command reached its topic (the record's timestamp)."""
    return Trigger(
        "suppression.changed",
        command.command_id,
        command.address,
        None,
        command.issued_at,
        published_at,
        command,
    )


@dataclass(frozen=True, slots=True)
class Subscriber:
    """An active endpoint subscribed to a trigger's type."""

    webhook_id: int
    created_at: datetime


def wanted_by(trigger: Trigger, subscriber: Subscriber, now: datetime, horizon_s: float) -> bool:
    """Does ``subscriber`` get ``trigger``: received after it registered, and younger than
    ``horizon_s`` (the log's retention: an older delivery could not even be listed)."""
    if trigger.received_at < subscriber.created_at:
        return False
    return (now - trigger.received_at).total_seconds() <= horizon_s


def new_delivery(
    trigger: Trigger, webhook_id: int, partition: int, seq: int, now: datetime
) -> DeliveryRecord:
    identifier = delivery_id(webhook_id, trigger.event_id)
    payload = WebhookPayload(
        id=identifier,
        type=trigger.type,
        webhook_id=webhook_id,
        event_id=trigger.event_id,
        created_at=trigger.received_at,
        email_id=trigger.email_id,
        recipient=trigger.address,
        timestamp=trigger.occurred_at,
        data=trigger.data,
    )
    return DeliveryRecord(
        delivery_id=identifier,
        webhook_id=webhook_id,
        type=trigger.type,
        event_id=trigger.event_id,
        address=trigger.address,
        seq=seq,
        partition=partition,
        status="pending",
        created_at=trigger.received_at,
        window_start=now,
        next_attempt_at=now,
        payload=payload,
    )


def created_ms(record: DeliveryRecord) -> int:
    return int(record.created_at.timestamp() * 1000)


def key_of(record: DeliveryRecord) -> bytes:
    return record_key(record.webhook_id, record.delivery_id)


def creation_writes(record: DeliveryRecord) -> list[Write]:
    """Record, log entry, pending entry: the record first, so a partial write is a record
    without its index entries (found again by the event's replay, which rewrites them)."""
    return [
        (key_of(record), record.model_dump_json().encode()),
        (time_key(record.webhook_id, created_ms(record), record.delivery_id), PRESENT),
        (pending_key(record.webhook_id, record.delivery_id), PRESENT),
    ]


def update_writes(record: DeliveryRecord) -> list[Write]:
    """The record, and its pending entry kept or deleted to match its status."""
    pending = pending_key(record.webhook_id, record.delivery_id)
    return [
        (key_of(record), record.model_dump_json().encode()),
        (pending, PRESENT if record.status == "pending" else None),
    ]


def deletion_writes(record_keys: Iterable[tuple[int, int, str]]) -> list[Write]:
    """Forget ended deliveries ``(webhook id, created ms, delivery id)``: record and log entry."""
    writes: list[Write] = []
    for webhook_id, ms, identifier in record_keys:
        writes.append((record_key(webhook_id, identifier), None))
        writes.append((time_key(webhook_id, ms, identifier), None))
        writes.append((pending_key(webhook_id, identifier), None))
    return writes


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    record: DeliveryRecord
    deactivate: bool = False  # the endpoint answered 410 Gone

    @property
    def ended(self) -> bool:
        return self.record.status != "pending"


def _history(record: DeliveryRecord, attempt: DeliveryAttempt, keep: int) -> list[DeliveryAttempt]:
    return [*record.history, attempt][-keep:]


def after_attempt(
    record: DeliveryRecord,
    result: AttemptResult,
    now: datetime,
    schedule: RetrySchedule,
    rng: random.Random,
    keep: int = 10,
) -> AttemptOutcome:
    """The record once ``result`` is known: delivered, retried later, or failed."""
    attempt = DeliveryAttempt(
        at=now,
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
    )
    attempts = record.attempts + 1
    common = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status_code": result.status_code,
        "last_error": result.error,
        "history": _history(record, attempt, keep),
    }
    outcome = verdict(result)
    if outcome == "retry":
        at = schedule.next_attempt(record.window_start, attempts, now, rng, result.retry_after_s)
        if at is not None:
            return AttemptOutcome(record.model_copy(update={**common, "next_attempt_at": at}))
        common["last_error"] = f"{result.error or result.status_code}; max_age reached"
    ended = {"next_attempt_at": None, "completed_at": now}
    if outcome == "delivered":
        return AttemptOutcome(record.model_copy(update={**common, **ended, "status": "delivered"}))
    if outcome == "gone":
        common["last_error"] = "gone: the endpoint answered 410 and was deactivated"
    failed = record.model_copy(update={**common, **ended, "status": "failed"})
    return AttemptOutcome(failed, deactivate=outcome == "gone")


def expired(record: DeliveryRecord, now: datetime, max_age_s: float) -> bool:
    return (now - record.window_start).total_seconds() > max_age_s


def fail(record: DeliveryRecord, now: datetime, error: str) -> DeliveryRecord:
    """Ended without an attempt: the endpoint is inactive or gone, or the age is past."""
    return record.model_copy(
        update={
            "status": "failed",
            "next_attempt_at": None,
            "completed_at": now,
            "last_error": error,
        }
    )


def resend(record: DeliveryRecord, now: datetime) -> DeliveryRecord:
    """A new series of attempts for an ended delivery (same id: receivers dedupe on it)."""
    return record.model_copy(
        update={
            "status": "pending",
            "window_start": now,
            "next_attempt_at": now,
            "completed_at": None,
        }
    )


def retry_at(record: DeliveryRecord, delay_s: float) -> DeliveryRecord:
    """Postpone a pending delivery without counting an attempt."""
    base = record.next_attempt_at or record.window_start
    return record.model_copy(update={"next_attempt_at": base + timedelta(seconds=delay_s)})


def ordered(records: Sequence[DeliveryRecord]) -> list[DeliveryRecord]:
    """Arrival order (``seq``), the id as tie-break."""
    return sorted(records, key=lambda r: (r.seq, r.delivery_id))
