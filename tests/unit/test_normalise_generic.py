"""The generic platform (seed 003): no event id, no bounce class."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson
import pytest

from processors.normalise import NormaliseOptions
from tests.fixtures.payloads import RECEIVED_AT, load, normalise_twice, raw, reason

SAMPLE = load("generic_bounced.json")


def body(**changes: object) -> bytes:
    return orjson.dumps({**orjson.loads(SAMPLE), **changes})


def test_a_bounce_is_soft_by_default_and_marked_as_classified_by_policy() -> None:
    [event] = normalise_twice(raw("generic", SAMPLE))
    assert event.type == "bounced.soft"
    assert event.bounce is not None
    assert event.bounce.classified_by_policy is True
    assert event.recipient == "invalid@example.com"
    assert event.message_id == "msg_abc123def456"
    assert event.occurred_at == datetime(2026, 3, 3, 8, 15, tzinfo=UTC)


def test_policy_can_count_unclassified_bounces_as_hard() -> None:
    options = NormaliseOptions(unclassified_bounce="hard")
    [event] = normalise_twice(raw("generic", body(type="email.bounce")), options)
    assert event.type == "bounced.hard"
    assert event.bounce is not None
    assert event.bounce.classified_by_policy is True


def test_the_dedupe_key_is_the_body_hash_so_a_retry_dedupes_and_another_event_does_not() -> None:
    [event] = normalise_twice(raw("generic", SAMPLE))
    assert event.dedupe_key == "sha256:" + hashlib.sha256(SAMPLE).hexdigest()
    [retry] = normalise_twice(raw("generic", SAMPLE, offset=900))
    [other] = normalise_twice(raw("generic", body(recipient="other@example.com")))
    assert retry.dedupe_key == event.dedupe_key
    assert other.dedupe_key != event.dedupe_key


@pytest.mark.parametrize(
    ("kind", "canonical"),
    [
        ("email.delivered", "delivered"),
        ("email.open", "opened"),
        ("email.click", "clicked"),
        ("email.unsubscribe", "unsubscribed"),
        ("email.bounce", "bounced.soft"),
        ("email.bounced", "bounced.soft"),
    ],
)
def test_seed_003_types(kind: str, canonical: str) -> None:
    [event] = normalise_twice(raw("generic", body(type=kind)))
    assert event.type == canonical


def test_timestamps_without_offset_are_utc_and_a_missing_one_is_the_receipt_time() -> None:
    [naive] = normalise_twice(raw("generic", body(timestamp="2026-03-03T08:15:00")))
    assert naive.occurred_at == datetime(2026, 3, 3, 8, 15, tzinfo=UTC)
    [shifted] = normalise_twice(raw("generic", body(timestamp="2026-03-03T10:15:00+02:00")))
    assert shifted.occurred_at == datetime(2026, 3, 3, 8, 15, tzinfo=UTC)
    assert shifted.occurred_at.utcoffset() is not None
    [absent] = normalise_twice(raw("generic", body(timestamp=None)))
    assert absent.occurred_at == RECEIVED_AT


def test_bad_generic_payloads_are_refused_with_their_reason() -> None:
    assert reason(raw("generic", body(type="email.exploded"))) == "unknown_event_type"
    assert reason(raw("generic", body(recipient=None))) == "missing_recipient"
    assert reason(raw("generic", body(recipient="not-an-address"))) == "invalid_recipient"
    assert reason(raw("generic", body(email_id=None))) == "invalid_payload"
    assert reason(raw("generic", body(timestamp="yesterday"))) == "invalid_payload"
    assert reason(raw("generic", b'{"type": "email.delivered", "recipient": 42')) == "invalid_json"
