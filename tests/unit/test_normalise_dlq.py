"""A record the normaliser refuses goes to the DLQ whole: the DLQ record alone rebuilds
the raw webhook, byte for byte, so it can be re-driven after a fix."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from processors.normalise import normalise
from schemas.dlq import DlqRaw, DlqRecord
from tests.fixtures.payloads import DEFAULT, load, raw, reason


def dlq_record_for(body: bytes, provider: str, headers: dict[str, str]) -> DlqRecord:
    """What the normaliser agent writes for a refused ``webhooks.raw`` record."""
    record = raw(provider, body, http_headers=headers, delivery_id="msg_1")
    why = reason(record)
    value = DlqRecord(
        reason=why,
        error="...",
        stage="normalise",
        failed_at=datetime(2026, 5, 13, 12, 0, 1, tzinfo=UTC),
        raw=DlqRaw(
            topic="webhooks.raw",
            partition=2,
            offset=41,
            key=f"{provider}-main:msg_1",
            headers={k: v.decode() for k, v in record.kafka_headers()},
            body_b64=base64.b64encode(body).decode(),
        ),
    )
    # Consumers read JSON, not our objects.
    return DlqRecord.model_validate_json(value.model_dump_json())


def test_a_dlq_record_rebuilds_the_raw_webhook_and_fails_the_same_way_again() -> None:
    body = b'{"type": "email.teleported", "created_at": "2026-05-13T10:00:00Z", \xff'
    dlq = dlq_record_for(body, "resend", {"svix-id": "msg_1"})
    assert dlq.reason == "invalid_json"
    rebuilt = dlq.raw.raw_webhook()
    assert rebuilt.body == body
    assert (rebuilt.provider, rebuilt.source) == ("resend", "resend-main")
    assert rebuilt.delivery_id == "msg_1"
    assert rebuilt.http_headers == {"svix-id": "msg_1"}
    assert (rebuilt.partition, rebuilt.offset) == (2, 41)
    assert reason(rebuilt) == "invalid_json"


def test_a_re_driven_record_maps_to_the_same_keys_as_a_live_one() -> None:
    body = load("resend_bounced.json")
    live = normalise(raw("resend", body, http_headers={"svix-id": "msg_9"}), DEFAULT)
    dlq = DlqRaw(
        topic="webhooks.raw",
        partition=2,
        offset=41,
        key=None,
        headers={
            k: v.decode()
            for k, v in raw("resend", body, http_headers={"svix-id": "msg_9"}).kafka_headers()
        },
        body_b64=base64.b64encode(body).decode(),
    )
    assert normalise(dlq.raw_webhook(), DEFAULT) == live


def test_a_dlq_record_that_is_not_a_raw_webhook_says_so() -> None:
    broken = DlqRaw(topic="webhooks.raw", partition=0, offset=0, key=None, headers={}, body_b64="")
    with pytest.raises(KeyError):
        broken.raw_webhook()
