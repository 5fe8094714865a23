"""Postmark: one record per webhook, told apart by ``RecordType``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from processors.normalise import NormaliseOptions
from tests.fixtures.payloads import load, normalise_twice, raw, reason

BOUNCE = load("postmark_bounce.json")


def record(name: str = "postmark_bounce.json", **fields: Any) -> bytes:
    return orjson.dumps({**orjson.loads(load(name)), **fields})


def test_hard_bounce_record() -> None:
    [event] = normalise_twice(raw("postmark", BOUNCE))
    assert event.type == "bounced.hard"
    assert event.dedupe_key == "postmark:4323372036854775807"
    assert event.recipient == "john@example.com"
    assert event.message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    # Postmark writes 7 fractional digits; microseconds keep 6.
    assert event.occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)
    assert event.correlation_id == "invite-77"
    assert event.sending_domain == "pm.acme.dev"
    assert event.bounce is not None
    assert (event.bounce.code, event.bounce.provider_class) == ("1", "HardBounce")


def test_delivery_with_an_offset_is_converted_to_utc_and_keyed_by_message_type_time() -> None:
    [event] = normalise_twice(raw("postmark", load("postmark_delivery.json")))
    assert event.type == "delivered"
    assert event.occurred_at == datetime(2014, 8, 1, 17, 28, 10, 273539, tzinfo=UTC)
    assert event.dedupe_key.startswith("postmark:00000000-0000-0000-0000-000000000000:Delivery:")
    later = record("postmark_delivery.json", DeliveredAt="2014-08-01T13:29:00Z")
    [other] = normalise_twice(raw("postmark", later))
    assert other.dedupe_key != event.dedupe_key


@pytest.mark.parametrize(
    ("bounce_type", "canonical"),
    [
        ("SoftBounce", "bounced.soft"),
        ("Blocked", "bounced.soft"),
        ("BadEmailAddress", "bounced.hard"),
        ("Transient", "deferred"),
        ("ManuallyDeactivated", "dropped"),
        ("SpamComplaint", "complained"),
        ("Unsubscribe", "unsubscribed"),
    ],
)
def test_bounce_record_types(bounce_type: str, canonical: str) -> None:
    [event] = normalise_twice(raw("postmark", record(Type=bounce_type)))
    assert event.type == canonical


def test_an_unknown_bounce_type_is_classified_by_policy() -> None:
    options = NormaliseOptions(unclassified_bounce="hard")
    [event] = normalise_twice(raw("postmark", record(Type="Unknown", TypeCode=2048)), options)
    assert event.type == "bounced.hard"
    assert event.bounce is not None
    assert event.bounce.classified_by_policy is True


def test_bounce_records_that_are_not_delivery_failures_are_nothing_to_do() -> None:
    assert normalise_twice(raw("postmark", record(Type="AutoResponder", TypeCode=64))) == []


@pytest.mark.parametrize(
    ("record_type", "canonical"),
    [("SpamComplaint", "complained"), ("Open", "opened"), ("Click", "clicked")],
)
def test_other_record_types(record_type: str, canonical: str) -> None:
    fields = {"RecordType": record_type, "OriginalLink": "https://acme.dev/a"}
    [event] = normalise_twice(raw("postmark", record(**fields)))
    assert event.type == canonical
    assert event.url == ("https://acme.dev/a" if record_type == "Click" else None)


def test_subscription_changes() -> None:
    [unsub] = normalise_twice(raw("postmark", load("postmark_subscription_change.json")))
    assert unsub.type == "unsubscribed"
    assert unsub.recipient == "bounced-address@wildbit.com"
    name = "postmark_subscription_change.json"
    reactivated = record(name, SuppressSending=False, SuppressionReason=None)
    after_bounce = record(name, SuppressionReason="HardBounce")
    assert normalise_twice(raw("postmark", reactivated)) == []
    # The Bounce record carries the hard bounce; counting it twice would be wrong.
    assert normalise_twice(raw("postmark", after_bounce)) == []
    assert reason(raw("postmark", record(name, SuppressSending=None))) == "invalid_payload"


def test_bad_postmark_payloads() -> None:
    assert reason(raw("postmark", record(RecordType="Inbound"))) == "unknown_event_type"
    assert reason(raw("postmark", record(Email=None))) == "missing_recipient"
    assert reason(raw("postmark", record(BouncedAt="not a time"))) == "invalid_payload"
