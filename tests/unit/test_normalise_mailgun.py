"""Mailgun: ``event-data`` of one event per webhook."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from processors.normalise import NormaliseOptions
from tests.fixtures.payloads import load, normalise_twice, raw, reason

SAMPLE = load("mailgun_failed_permanent.json")


def body(**data: Any) -> bytes:
    webhook = orjson.loads(SAMPLE)
    return orjson.dumps({**webhook, "event-data": {**webhook["event-data"], **data}})


def test_permanent_failure_is_a_hard_bounce_with_the_smtp_detail() -> None:
    [event] = normalise_twice(raw("mailgun", SAMPLE))
    assert event.type == "bounced.hard"
    assert event.dedupe_key == "mailgun:G9Bn5sl1TC6nu79C8C0bwg"
    assert event.recipient == "gone@example.com"
    assert event.message_id == "20260513100000.1.6B9C3F2A1E@mg.acme.dev"
    assert event.occurred_at == datetime(2026, 5, 13, 10, 0, 0, 521232, tzinfo=UTC)
    assert event.correlation_id == "inv-2026-0513"
    assert event.sending_domain == "mg.acme.dev"
    assert event.bounce is not None
    assert (event.bounce.code, event.bounce.provider_class) == ("550", "permanent/bounce")
    assert event.bounce.reason is not None
    assert "5.1.1" in event.bounce.reason


@pytest.mark.parametrize(
    ("severity", "why", "canonical"),
    [
        ("temporary", "generic", "deferred"),  # Mailgun retries: not a bounce yet
        ("permanent", "suppress-bounce", "dropped"),  # Mailgun's own suppression list
        ("permanent", "old", "bounced.soft"),  # retries of a temporary failure ran out
        ("permanent", "generic", "bounced.hard"),
    ],
)
def test_failures_by_severity_and_reason(severity: str, why: str, canonical: str) -> None:
    [event] = normalise_twice(raw("mailgun", body(severity=severity, reason=why)))
    assert event.type == canonical


def test_a_failure_without_severity_is_classified_by_policy() -> None:
    record = raw("mailgun", body(severity=None))
    [event] = normalise_twice(record, NormaliseOptions(unclassified_bounce="hard"))
    assert event.type == "bounced.hard"
    assert event.bounce is not None
    assert event.bounce.classified_by_policy is True


@pytest.mark.parametrize(
    ("kind", "canonical"),
    [
        ("accepted", "sent"),
        ("delivered", "delivered"),
        ("opened", "opened"),
        ("clicked", "clicked"),
        ("complained", "complained"),
        ("unsubscribed", "unsubscribed"),
        ("rejected", "dropped"),
    ],
)
def test_mailgun_types(kind: str, canonical: str) -> None:
    [event] = normalise_twice(raw("mailgun", body(event=kind, url="https://acme.dev/x")))
    assert event.type == canonical
    assert event.bounce is None
    assert event.url == ("https://acme.dev/x" if kind == "clicked" else None)


def test_the_envelope_sender_is_the_domain_when_the_from_header_is_absent() -> None:
    data = orjson.loads(SAMPLE)["event-data"]
    data["message"]["headers"].pop("from")
    [event] = normalise_twice(raw("mailgun", body(message=data["message"])))
    assert event.sending_domain == "mg.acme.dev"


def test_bad_mailgun_payloads() -> None:
    assert reason(raw("mailgun", body(event="stored"))) == "unknown_event_type"
    assert reason(raw("mailgun", body(recipient=None))) == "missing_recipient"
    assert reason(raw("mailgun", body(timestamp="soon"))) == "invalid_payload"
    assert reason(raw("mailgun", b'{"signature": {}}')) == "invalid_payload"
