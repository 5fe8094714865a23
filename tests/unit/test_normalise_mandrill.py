"""Mandrill: a form field holding a JSON array of events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.fixtures.payloads import load, mandrill_form, normalise_twice, raw, reason

EVENTS = load("mandrill_events.json")


def form(*events: dict[str, Any]) -> bytes:
    return mandrill_form(orjson.dumps(list(events)))


def first(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(EVENTS)[0]
    return {**event, **fields}


def test_a_form_with_two_message_events_and_a_sync_event_gives_two_events() -> None:
    bounce, opened = normalise_twice(raw("mandrill", mandrill_form(EVENTS)))
    assert (bounce.type, bounce.recipient) == ("bounced.hard", "example.webhook@mandrillapp.com")
    assert (opened.type, opened.recipient) == ("opened", "reader@example.com")
    assert bounce.dedupe_key == "mandrill:exampleaaaaaaaaaaaaaaaaaaaaaaaaa:hard_bounce:1778666400"
    assert opened.dedupe_key == "mandrill:examplebbbbbbbbbbbbbbbbbbbbbbbbb:open:1778666460"
    assert [bounce.raw.index, opened.raw.index] == [0, 1]
    assert bounce.message_id == "exampleaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert bounce.occurred_at == datetime(2026, 5, 13, 10, 0, tzinfo=UTC)
    assert bounce.correlation_id == "welcome-111"
    assert bounce.sending_domain == "mandrillapp.com"
    assert bounce.bounce is not None
    assert (bounce.bounce.code, bounce.bounce.provider_class) == ("bad_mailbox", "hard_bounce")


@pytest.mark.parametrize(
    ("kind", "canonical"),
    [
        ("send", "sent"),
        ("deferral", "deferred"),
        ("hard_bounce", "bounced.hard"),
        ("soft_bounce", "bounced.soft"),
        ("open", "opened"),
        ("click", "clicked"),
        ("spam", "complained"),
        ("unsub", "unsubscribed"),
        ("reject", "dropped"),
    ],
)
def test_mandrill_types(kind: str, canonical: str) -> None:
    [event] = normalise_twice(raw("mandrill", form(first(event=kind, url="https://a.dev/"))))
    assert event.type == canonical
    assert event.url == ("https://a.dev/" if kind == "click" else None)


def test_the_test_post_mandrill_sends_on_webhook_creation_is_nothing_to_do() -> None:
    assert normalise_twice(raw("mandrill", b"mandrill_events=%5B%5D")) == []


def test_bad_mandrill_payloads() -> None:
    assert reason(raw("mandrill", form(first(event="teleport")))) == "unknown_event_type"
    no_email = first(msg={**first()["msg"], "email": None})
    assert reason(raw("mandrill", form(no_email))) == "missing_recipient"
    assert reason(raw("mandrill", form(first(msg=None)))) == "invalid_payload"
    assert reason(raw("mandrill", b"other_field=1")) == "invalid_payload"
    assert reason(raw("mandrill", b"mandrill_events=%ff%fe")) == "invalid_payload"
    assert reason(raw("mandrill", b"mandrill_events=%5B%7B")) == "invalid_json"
    assert reason(raw("mandrill", mandrill_form(b'{"event": "send"}'))) == "invalid_payload"
