"""Resend, and Svix sources carrying Resend-shaped email events."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from processors.normalise import NormaliseOptions
from tests.fixtures.payloads import load, normalise_twice, raw, reason

HEADERS = {"svix-id": "msg_2f8Tz1Qx", "svix-timestamp": "1778666412"}


def body(name: str = "resend_bounced.json", **data: Any) -> bytes:
    event = orjson.loads(load(name))
    kind = data.pop("type", event["type"])
    return orjson.dumps({**event, "type": kind, "data": {**event["data"], **data}})


def test_permanent_bounce_is_hard_with_what_resend_said() -> None:
    [event] = normalise_twice(raw("resend", body(), http_headers=HEADERS))
    assert event.type == "bounced.hard"
    assert event.dedupe_key == "resend:msg_2f8Tz1Qx"
    assert event.recipient == "bounced@example.com"
    assert event.message_id == "56761188-7520-42d8-8898-ff6fc54ce618"
    assert event.occurred_at == datetime(2026, 5, 13, 10, 0, 12, 126000, tzinfo=UTC)
    assert event.sending_domain == "mail.acme.dev"
    assert event.correlation_id == "signup-8812"
    assert event.bounce is not None
    assert event.bounce.provider_class == "Permanent/General"
    assert event.bounce.classified_by_policy is False


@pytest.mark.parametrize(
    ("bounce_type", "options", "expected", "by_policy"),
    [
        ("Transient", NormaliseOptions(), "bounced.soft", False),
        ("Undetermined", NormaliseOptions(), "bounced.soft", True),
        ("Undetermined", NormaliseOptions(unclassified_bounce="hard"), "bounced.hard", True),
    ],
)
def test_bounce_classes(
    bounce_type: str, options: NormaliseOptions, expected: str, by_policy: bool
) -> None:
    record = raw("resend", body(bounce={"type": bounce_type}), http_headers=HEADERS)
    [event] = normalise_twice(record, options)
    assert event.type == expected
    assert event.bounce is not None
    assert event.bounce.classified_by_policy is by_policy


def test_the_id_comes_from_the_webhook_headers_or_else_the_delivery_id_or_else_the_body() -> None:
    standard = {"webhook-id": "msg_std", "webhook-timestamp": "1778666412"}
    [a] = normalise_twice(raw("resend", body(), http_headers=standard))
    [b] = normalise_twice(raw("resend", body(), delivery_id="msg_from_ingest"))
    [c] = normalise_twice(raw("resend", body()))
    assert a.dedupe_key == "resend:msg_std"
    assert b.dedupe_key == "resend:msg_from_ingest"
    assert c.dedupe_key == "sha256:" + hashlib.sha256(body()).hexdigest()


@pytest.mark.parametrize(
    ("kind", "canonical"),
    [
        ("email.sent", "sent"),
        ("email.delivered", "delivered"),
        ("email.delivery_delayed", "deferred"),
        ("email.complained", "complained"),
        ("email.opened", "opened"),
        ("email.clicked", "clicked"),
        ("email.failed", "dropped"),
        ("email.suppressed", "dropped"),
    ],
)
def test_resend_types(kind: str, canonical: str) -> None:
    [event] = normalise_twice(raw("resend", body(type=kind, bounce=None), http_headers=HEADERS))
    assert event.type == canonical
    assert event.bounce is None


def test_a_click_keeps_the_link() -> None:
    [event] = normalise_twice(raw("resend", load("resend_clicked.json"), http_headers=HEADERS))
    assert (event.type, event.url) == ("clicked", "https://acme.dev/confirm?t=abc")


def test_several_recipients_give_one_event_each_but_a_bounce_for_several_is_ambiguous() -> None:
    to = ["a@example.com", "b@example.com"]
    delivered = body(type="email.delivered", to=to, bounce=None)
    events = normalise_twice(raw("resend", delivered, http_headers=HEADERS))
    assert [e.recipient for e in events] == to
    assert [e.dedupe_key for e in events] == [f"resend:msg_2f8Tz1Qx:{a}" for a in to]
    assert [e.raw.index for e in events] == [0, 1]
    assert reason(raw("resend", body(to=to), http_headers=HEADERS)) == "ambiguous_recipient"


def test_contact_and_domain_events_carry_no_delivery_outcome() -> None:
    contact = orjson.dumps(
        {"type": "contact.created", "created_at": "2026-05-13T10:00:00Z", "data": {"id": "c1"}}
    )
    assert normalise_twice(raw("resend", contact, http_headers=HEADERS)) == []


def test_bad_resend_payloads() -> None:
    assert reason(raw("resend", body(type="email.teleported"))) == "unknown_event_type"
    assert reason(raw("resend", body(to=[]))) == "missing_recipient"
    assert reason(raw("resend", body(email_id=None))) == "invalid_payload"
    assert reason(raw("resend", body(to=42))) == "invalid_payload"


def test_svix_reads_email_events_like_resend_under_its_own_prefix() -> None:
    event = orjson.loads(load("resend_clicked.json"))
    event["timestamp"] = event.pop("created_at")  # the Standard Webhooks spelling
    record = raw("svix", orjson.dumps(event), http_headers={"webhook-id": "msg_svix"})
    [canonical] = normalise_twice(record)
    assert canonical.dedupe_key == "svix:msg_svix"
    assert canonical.provider == "svix"
    assert canonical.type == "clicked"
    assert canonical.occurred_at == datetime(2026, 5, 13, 11, 20, tzinfo=UTC)


def test_svix_events_that_are_not_email_events_are_unmappable() -> None:
    invoice = orjson.dumps({"type": "invoice.paid", "timestamp": "2026-05-13T10:00:00Z"})
    assert reason(raw("svix", invoice)) == "unknown_event_type"
    bad_data = orjson.dumps({"type": "email.delivered", "data": ["not", "an", "object"]})
    assert reason(raw("svix", bad_data)) == "invalid_payload"
