"""SendGrid: a JSON array of events, one canonical event per element."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.fixtures.payloads import load, normalise_twice, raw, reason

BATCH = load("sendgrid_batch.json")


def one(**fields: Any) -> bytes:
    event = {
        "email": "dave@example.com",
        "timestamp": 1778666400,
        "event": "delivered",
        "sg_event_id": "evt-dave",
        "sg_message_id": "msgdave.filterdrecv-1",
    }
    return orjson.dumps([{**event, **fields}])


def test_a_batch_naming_three_addresses_gives_three_events_with_distinct_keys() -> None:
    events = normalise_twice(raw("sendgrid", BATCH))
    assert [(e.type, e.recipient) for e in events] == [
        ("delivered", "alice@example.com"),
        ("bounced.soft", "bob@example.com"),
        ("clicked", "carol@example.com"),
    ]
    assert [e.dedupe_key for e in events] == [
        "sendgrid:rbtnWrG1DVDGGGFHFyun0A",
        "sendgrid:6g4ZI7SA-xmRDv57GoPIPw",
        "sendgrid:Ne0rDfnVR0-x5a3ZTJxk3Q",
    ]
    assert [e.raw.index for e in events] == [0, 1, 2]
    assert {(e.raw.partition, e.raw.offset) for e in events} == {(2, 41)}


def test_fields_of_a_batch_event() -> None:
    delivered, blocked, click = normalise_twice(raw("sendgrid", BATCH))
    # The X-Message-Id the send API returned, without SendGrid's relay suffix.
    assert delivered.message_id == "14c5d75ce93.dfd.64b469"
    assert blocked.message_id == "W86EgYT6SQKk0lRflfLRsA"
    assert delivered.correlation_id == "order-1001"
    assert delivered.occurred_at == datetime(2026, 5, 13, 10, 0, tzinfo=UTC)
    assert blocked.bounce is not None
    assert (blocked.bounce.provider_class, blocked.bounce.code) == ("blocked", "5.7.1")
    assert click.url == "https://shop.example.com/orders/1001"


def test_a_bounce_of_type_bounce_is_hard() -> None:
    [event] = normalise_twice(raw("sendgrid", one(event="bounce", type="bounce", status="5.1.1")))
    assert event.type == "bounced.hard"


@pytest.mark.parametrize(
    ("kind", "canonical"),
    [
        ("processed", "sent"),
        ("delivered", "delivered"),
        ("deferred", "deferred"),
        ("dropped", "dropped"),
        ("open", "opened"),
        ("click", "clicked"),
        ("spamreport", "complained"),
        ("unsubscribe", "unsubscribed"),
        ("group_unsubscribe", "unsubscribed"),
    ],
)
def test_sendgrid_types(kind: str, canonical: str) -> None:
    [event] = normalise_twice(raw("sendgrid", one(event=kind)))
    assert event.type == canonical


def test_a_resubscribe_alone_is_nothing_to_do() -> None:
    assert normalise_twice(raw("sendgrid", one(event="group_resubscribe"))) == []
    assert normalise_twice(raw("sendgrid", b"[]")) == []


def test_without_sg_event_id_the_key_is_the_body_hash_and_the_position() -> None:
    body = orjson.dumps(
        [{"email": f"u{i}@example.com", "timestamp": 1778666400, "event": "open"} for i in (0, 1)]
    )
    digest = hashlib.sha256(body).hexdigest()
    events = normalise_twice(raw("sendgrid", body))
    assert [e.dedupe_key for e in events] == [f"sha256:{digest}:0", f"sha256:{digest}:1"]


def test_one_bad_event_refuses_the_whole_record() -> None:
    good = orjson.loads(BATCH)
    assert reason(raw("sendgrid", orjson.dumps([*good, {**good[0], "event": "x"}]))) == (
        "unknown_event_type"
    )
    assert reason(raw("sendgrid", orjson.dumps([*good, {"event": "open"}]))) == "invalid_payload"


def test_bad_sendgrid_payloads() -> None:
    assert reason(raw("sendgrid", one(email=None))) == "missing_recipient"
    assert reason(raw("sendgrid", one(timestamp=1e20))) == "invalid_payload"
    assert reason(raw("sendgrid", b"[{'email': 'x@example.com'}]")) == "invalid_json"
    assert reason(raw("sendgrid", b'{"event": "delivered"}')) == "invalid_payload"
