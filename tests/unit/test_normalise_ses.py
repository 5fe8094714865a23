"""Amazon SES through SNS: an SES event inside the envelope's ``Message`` string."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from processors.normalise import NormaliseOptions
from tests.fixtures.payloads import load, normalise_twice, raw, reason, sns_envelope

FEEDBACK = "0100018f6a0f2c3b-8a1f4b2e-5d6c-4e7f-9a0b-1c2d3e4f5a6b-000000"


def ses(name: str = "ses_bounce_message.json", sns_id: str = "sns-1", **fields: Any) -> bytes:
    message = {**orjson.loads(load(name)), **fields}
    return sns_envelope(orjson.dumps(message), message_id=sns_id)


def bounce(**fields: Any) -> dict[str, Any]:
    return {**orjson.loads(load("ses_bounce_message.json"))["bounce"], **fields}


def test_a_bounce_naming_two_recipients_gives_two_events() -> None:
    events = normalise_twice(raw("ses", ses()))
    assert [e.recipient for e in events] == ["jane@example.com", "richard@example.com"]
    assert [e.dedupe_key for e in events] == [
        f"ses:{FEEDBACK}:jane@example.com",
        f"ses:{FEEDBACK}:richard@example.com",
    ]
    assert [e.raw.index for e in events] == [0, 1]
    for e in events:
        assert e.type == "bounced.hard"
        assert e.message_id == "0100018f6a0f1a2b-3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f-000000"
        assert e.occurred_at == datetime(2026, 5, 13, 10, 0, 38, 237000, tzinfo=UTC)
        assert e.sending_domain == "ses.acme.dev"
        assert e.correlation_id == "welcome-42"
        assert e.bounce is not None
        assert (e.bounce.code, e.bounce.provider_class) == ("5.1.1", "Permanent/General")


def test_the_same_feedback_through_two_topics_has_the_same_keys() -> None:
    first = normalise_twice(raw("ses", ses(sns_id="sns-topic-a")))
    second = normalise_twice(raw("ses", ses(sns_id="sns-topic-b")))
    assert [e.dedupe_key for e in first] == [e.dedupe_key for e in second]


@pytest.mark.parametrize(
    ("bounce_type", "options", "canonical", "by_policy"),
    [
        ("Transient", NormaliseOptions(), "bounced.soft", False),
        ("Undetermined", NormaliseOptions(), "bounced.soft", True),
        ("Undetermined", NormaliseOptions(unclassified_bounce="hard"), "bounced.hard", True),
    ],
)
def test_bounce_classes(
    bounce_type: str, options: NormaliseOptions, canonical: str, by_policy: bool
) -> None:
    events = normalise_twice(raw("ses", ses(bounce=bounce(bounceType=bounce_type))), options)
    assert {e.type for e in events} == {canonical}
    assert all(e.bounce is not None and e.bounce.classified_by_policy is by_policy for e in events)


def test_delivery_event_is_keyed_by_the_sns_message_id() -> None:
    [event] = normalise_twice(raw("ses", ses("ses_delivery_message.json", sns_id="sns-2")))
    assert event.type == "delivered"
    assert event.dedupe_key == "ses:sns-2:recipient@example.com"
    assert event.occurred_at == datetime(2026, 5, 13, 10, 5, 1, 120000, tzinfo=UTC)
    assert event.correlation_id is None


def test_complaints_and_not_spam_reports() -> None:
    complaint = {
        "feedbackId": "fb-1",
        "complainedRecipients": [{"emailAddress": "jane@example.com"}],
        "timestamp": "2026-05-13T11:00:00Z",
        "complaintFeedbackType": "abuse",
    }
    record = ses(notificationType="Complaint", complaint=complaint, bounce=None)
    [event] = normalise_twice(raw("ses", record))
    assert (event.type, event.dedupe_key) == ("complained", "ses:fb-1:jane@example.com")
    not_spam = {**complaint, "complaintFeedbackType": "not-spam"}
    record = ses(notificationType="Complaint", complaint=not_spam, bounce=None)
    assert normalise_twice(raw("ses", record)) == []


@pytest.mark.parametrize(
    ("event_type", "part", "canonical"),
    [
        ("Send", {"send": {}}, "sent"),
        ("Reject", {"reject": {"reason": "Bad content"}}, "dropped"),
        ("Open", {"open": {"timestamp": "2026-05-13T12:00:00Z"}}, "opened"),
        ("Click", {"click": {"timestamp": "2026-05-13T12:00:00Z", "link": "https://a"}}, "clicked"),
        (
            "DeliveryDelay",
            {
                "deliveryDelay": {
                    "delayType": "MailboxFull",
                    "delayedRecipients": [{"emailAddress": "jane@example.com", "status": "4.2.2"}],
                    "timestamp": "2026-05-13T12:00:00Z",
                }
            },
            "deferred",
        ),
    ],
)
def test_event_publishing_types(event_type: str, part: dict[str, Any], canonical: str) -> None:
    message = {"eventType": event_type, "notificationType": None, "bounce": None, **part}
    events = normalise_twice(raw("ses", ses(**message)))
    assert {e.type for e in events} == {canonical}
    assert events[0].recipient == "jane@example.com"
    assert events[0].url == ("https://a" if canonical == "clicked" else None)


def test_control_messages_are_nothing_to_do() -> None:
    confirmation = sns_envelope(b"You have chosen to subscribe", message_id="c1")
    assert normalise_twice(raw("ses", confirmation, kind="subscription_confirmation")) == []
    typed = orjson.dumps({**orjson.loads(confirmation), "Type": "SubscriptionConfirmation"})
    assert normalise_twice(raw("ses", typed)) == []
    setup = orjson.dumps({"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "ok"})
    assert normalise_twice(raw("ses", sns_envelope(setup, message_id="c2"))) == []


def test_bad_ses_payloads() -> None:
    assert reason(raw("ses", sns_envelope(b"{not json", message_id="x"))) == "invalid_json"
    assert reason(raw("ses", ses(notificationType="Teleport"))) == "unknown_event_type"
    assert reason(raw("ses", ses(bounce=bounce(bouncedRecipients=[])))) == "missing_recipient"
    assert reason(raw("ses", ses(mail=None))) == "invalid_payload"
    assert reason(raw("ses", b'{"Type": "Notification"}')) == "invalid_payload"
