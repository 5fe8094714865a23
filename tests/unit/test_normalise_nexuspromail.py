"""NexusProMail (seeds 000/002) -> canonical events."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from processors.normalise import NormaliseOptions
from tests.fixtures.payloads import RECEIVED_AT, load, normalise_twice, raw, reason


def body(**changes: object) -> bytes:
    event = orjson.loads(load("nexuspromail_bounced_hard.json"))
    data = {**event["data"], **changes.pop("data", {})}  # type: ignore[dict-item]
    return orjson.dumps({**event, **changes, "data": data})


def test_hard_bounce_keeps_what_seed_004_asks_for() -> None:
    [event] = normalise_twice(raw("nexuspromail", load("nexuspromail_bounced_hard.json")))
    assert event.type == "bounced.hard"
    assert event.dedupe_key == "nexuspromail:evt_7f3a9c2e41b8"
    assert event.recipient == "jane.doe@example.com"
    assert event.message_id == "msg_01HX4Q2Z8K"
    assert event.occurred_at == datetime(2026, 5, 13, 10, 0, 3, tzinfo=UTC)
    assert event.received_at == RECEIVED_AT
    assert (event.raw.partition, event.raw.offset, event.raw.index) == (2, 41, 0)
    assert event.source == "nexuspromail-main"
    assert event.verification == "test"
    assert event.bounce is not None
    assert (event.bounce.code, event.bounce.provider_class) == ("550", "bounced.hard")
    assert event.bounce.classified_by_policy is False


@pytest.mark.parametrize(
    "kind",
    [
        "delivered",
        "opened",
        "clicked",
        "bounced.hard",
        "bounced.soft",
        "complained",
        "unsubscribed",
    ],
)
def test_every_documented_type_is_its_canonical_type(kind: str) -> None:
    [event] = normalise_twice(raw("nexuspromail", body(type=kind)))
    assert event.type == kind
    assert (event.bounce is not None) == kind.startswith("bounced.")


def test_without_a_data_timestamp_the_event_time_is_created_at() -> None:
    [event] = normalise_twice(raw("nexuspromail", body(data={"timestamp": None})))
    assert event.occurred_at == datetime(2026, 5, 13, 10, 0, 5, tzinfo=UTC)


def test_options_change_the_address_but_not_the_dedupe_key() -> None:
    record = raw("nexuspromail", body(data={"email": "Jane+promo@Example.com"}))
    [kept] = normalise_twice(record)
    [stripped] = normalise_twice(record, NormaliseOptions(strip_plus_tags=True))
    assert (kept.recipient, stripped.recipient) == ("jane+promo@example.com", "jane@example.com")
    assert kept.dedupe_key == stripped.dedupe_key


def test_unknown_type_missing_recipient_and_missing_id_are_refused() -> None:
    assert reason(raw("nexuspromail", body(type="bounced.maybe"))) == "unknown_event_type"
    assert reason(raw("nexuspromail", body(data={"email": None}))) == "missing_recipient"
    no_id = orjson.loads(body())
    del no_id["id"]
    assert reason(raw("nexuspromail", orjson.dumps(no_id))) == "invalid_payload"
