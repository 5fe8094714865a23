"""Delivery records: which events become deliveries, their ids, and what each attempt's
answer does to them (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson

from processors.webhooks import deliveries as d
from processors.webhooks.keys import PENDING, RECORD, TIME, parse_time_key
from processors.webhooks.retry import AttemptResult, RetrySchedule
from processors.webhooks.sender import headers, render
from processors.webhooks.signing import sign
from schemas.commands import SuppressionChange, SuppressionCommand
from schemas.events import CanonicalEvent, RawPosition
from schemas.webhooks import DeliveryRecord, WebhookBody

T0 = datetime(2026, 5, 20, 8, 0, tzinfo=UTC)
SCHEDULE = RetrySchedule(base_s=1, cap_s=10, max_age_s=3600, retry_after_max_s=60)


def event(kind: str = "bounced.hard", n: int = 1, received: datetime = T0) -> CanonicalEvent:
    return CanonicalEvent(
        dedupe_key=f"nexuspromail:evt_{n}",
        provider="nexuspromail",
        source="nexuspromail",
        type=kind,  # type: ignore[arg-type]
        recipient=f"a{n}@example.com",
        message_id=f"msg_{n}",
        occurred_at=received - timedelta(seconds=3),
        received_at=received,
        raw=RawPosition(partition=0, offset=n),
        verification="hmac",
    )


def command() -> SuppressionCommand:
    change = SuppressionChange(action="suppress", scope="all", reason="hard_bounce", cause="c1")
    return SuppressionCommand(
        command_id=SuppressionCommand.make_id("a@example.com", change),
        address="a@example.com",
        suppression={"all": None, "marketing": None},
        change=change,
        issued_at=T0,
    )


def test_canonical_types_map_to_the_seeds_webhook_types() -> None:
    kinds = {
        "opened": "email.open",
        "clicked": "email.click",
        "bounced.hard": "email.bounce",
        "bounced.soft": "email.bounce",
        "unsubscribed": "email.unsubscribe",
        "delivered": "email.delivered",
        "complained": "email.complaint",
    }
    for canonical, webhook in kinds.items():
        trigger = d.event_trigger(event(canonical))
        assert trigger is not None
        assert trigger.type == webhook
    for unoffered in ("sent", "deferred", "dropped"):
        assert d.event_trigger(event(unoffered)) is None
    trigger = d.command_trigger(command(), T0)
    assert (trigger.type, trigger.address, trigger.event_id) == (
        "suppression.changed",
        "a@example.com",
        command().command_id,
    )


def test_delivery_ids_are_deterministic_per_endpoint_and_event() -> None:
    assert d.delivery_id(3, "nexuspromail:evt_1") == d.delivery_id(3, "nexuspromail:evt_1")
    assert d.delivery_id(3, "nexuspromail:evt_1") != d.delivery_id(4, "nexuspromail:evt_1")
    assert d.delivery_id(3, "nexuspromail:evt_1") != d.delivery_id(3, "nexuspromail:evt_2")
    # Fixed forever: receivers dedupe on it across versions.
    assert d.delivery_id(1, "e") == "4769aa19-15d4-5e8a-8c75-c27d95756ad3"


def test_an_endpoint_gets_events_received_after_it_registered_within_the_horizon() -> None:
    trigger = d.event_trigger(event(received=T0))
    assert trigger is not None
    before, after = d.Subscriber(1, T0 - timedelta(seconds=1)), d.Subscriber(2, T0 + timedelta(1))
    assert d.wanted_by(trigger, before, T0, 60)
    assert not d.wanted_by(trigger, after, T0, 60)
    assert not d.wanted_by(trigger, before, T0 + timedelta(seconds=61), 60)


def new(kind: str = "bounced.hard") -> DeliveryRecord:
    trigger = d.event_trigger(event(kind))
    assert trigger is not None
    return d.new_delivery(trigger, 7, partition=2, seq=11, now=T0)


def test_a_new_delivery_is_pending_now_and_written_under_its_three_keys() -> None:
    record = new()
    assert (record.status, record.attempts, record.next_attempt_at) == ("pending", 0, T0)
    assert record.payload.recipient == "a1@example.com"
    assert isinstance(record.payload.data, CanonicalEvent)
    keys = [k for k, _ in d.creation_writes(record)]
    assert [k[:2] for k in keys] == [RECORD, TIME, PENDING]
    assert parse_time_key(keys[1]) == (7, int(T0.timestamp() * 1000), record.delivery_id)
    assert [v for _, v in d.update_writes(record)][1] is not None
    delivered = d.after_attempt(record, AttemptResult(200), T0, SCHEDULE, random.Random(1))
    assert [v for _, v in d.update_writes(delivered.record)][1] is None  # pending entry goes


def attempt_all(record: DeliveryRecord, answers: list[AttemptResult]) -> d.AttemptOutcome:
    rng = random.Random(5)
    now = T0
    outcome = d.AttemptOutcome(record)
    for answer in answers:
        outcome = d.after_attempt(outcome.record, answer, now, SCHEDULE, rng)
        if outcome.record.next_attempt_at is not None:
            now = outcome.record.next_attempt_at
    return outcome


def test_500_three_times_then_200_is_delivered_with_every_attempt_logged() -> None:
    outcome = attempt_all(new(), [AttemptResult(500)] * 3 + [AttemptResult(200)])
    record = outcome.record
    assert (record.status, record.attempts, record.last_status_code) == ("delivered", 4, 200)
    assert [a.status_code for a in record.history] == [500, 500, 500, 200]
    assert record.next_attempt_at is None
    assert record.completed_at is not None


def test_retries_wait_within_the_schedule() -> None:
    record = new()
    rng = random.Random(9)
    for n in range(1, 6):
        now = record.next_attempt_at or T0
        record = d.after_attempt(record, AttemptResult(503), now, SCHEDULE, rng).record
        assert record.next_attempt_at is not None
        wait = (record.next_attempt_at - now).total_seconds()
        assert 0 <= wait <= SCHEDULE.ceiling(n)


def test_410_fails_the_delivery_and_deactivates_the_endpoint() -> None:
    outcome = attempt_all(new(), [AttemptResult(410)])
    assert outcome.deactivate
    assert outcome.record.status == "failed"
    assert "410" in (outcome.record.last_error or "")


def test_other_4xx_fail_at_once_and_do_not_deactivate() -> None:
    outcome = attempt_all(new(), [AttemptResult(400)])
    assert (outcome.record.status, outcome.deactivate, outcome.record.attempts) == (
        "failed",
        False,
        1,
    )


def test_a_dead_endpoint_fails_once_the_maximum_age_is_reached() -> None:
    schedule = RetrySchedule(base_s=5, cap_s=5, max_age_s=30, retry_after_max_s=5)
    record, now, rng = new(), T0, random.Random(2)
    for _ in range(1000):
        outcome = d.after_attempt(
            record, AttemptResult(None, "connection_error"), now, schedule, rng
        )
        record = outcome.record
        if record.status != "pending":
            break
        assert record.next_attempt_at is not None
        assert (record.next_attempt_at - record.window_start).total_seconds() <= 30
        now = record.next_attempt_at
    assert record.status == "failed"
    assert "max_age" in (record.last_error or "")
    assert len(record.history) == 10  # the newest attempts only


def test_resend_starts_a_new_series_under_the_same_id() -> None:
    failed = attempt_all(new(), [AttemptResult(400)]).record
    later = T0 + timedelta(hours=3)
    again = d.resend(failed, later)
    assert (again.status, again.window_start, again.next_attempt_at) == ("pending", later, later)
    assert again.delivery_id == failed.delivery_id
    assert again.attempts == 1  # attempts keep counting


def test_the_body_carries_id_and_sent_at_under_the_signature() -> None:
    record = new()
    body = render(record, T0 + timedelta(seconds=1))
    parsed = WebhookBody.model_validate_json(body)
    assert parsed.id == record.delivery_id
    assert parsed.sent_at == T0 + timedelta(seconds=1)
    assert parsed.attempt == 1
    assert (parsed.type, parsed.recipient, parsed.email_id) == (
        "email.bounce",
        "a1@example.com",
        "msg_1",
    )
    sent = headers(record, body, "s3cret", T0)
    assert sent["X-Webhook-Signature"] == sign("s3cret", body)
    assert sent["X-Webhook-Id"] == record.delivery_id
    assert sent["X-Webhook-Timestamp"] == str(int(T0.timestamp()))
    assert "s3cret" not in orjson.dumps(sent).decode()
