"""The committed JSON Schemas say what the models say (consumers read the files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from processors.hops import encode_batch
from schemas.events import BounceDetail, CanonicalEvent, RawPosition
from schemas.jsonschema import DIRECTORY, SCHEMAS, generate

REGENERATE = "stale JSON Schema: run `python -m schemas.jsonschema` and commit the result"


def test_committed_schema_files_equal_the_generated_ones() -> None:
    expected = generate()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in DIRECTORY.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), REGENERATE
    for name, text in expected.items():
        assert on_disk[name] == text, f"{name}: {REGENERATE}"


def test_every_topic_value_has_a_schema_that_is_a_json_object() -> None:
    assert set(SCHEMAS) == {
        "canonical_event.json",
        "canonical_event_batch.json",
        "manual_action.json",
        "manual_action_request.json",
        "suppression_command.json",
        "dlq_record.json",
        "address_state.json",
        "message_state.json",
        "webhook_delivery.json",
        "webhook_subscription.json",
        "webhook_delivery_record.json",
    }
    for name, text in generate().items():
        schema = json.loads(text)
        kind = "array" if name == "canonical_event_batch.json" else "object"
        assert schema["type"] == kind, name
        assert schema["title"] == SCHEMAS[name].__name__


def a_real_event() -> CanonicalEvent:
    return CanonicalEvent(
        dedupe_key="ses:0000014a-f4d4-4f89-93b1-0a6a2f1e7c11:jane@example.com",
        provider="ses",
        source="ses-eu",
        type="bounced.hard",
        recipient="jane@example.com",
        message_id="0000014a-f4d4-4f89-93b1-0a6a2f1e7c11-000000",
        occurred_at=datetime(2026, 5, 13, 10, 0, tzinfo=UTC),
        received_at=datetime(2026, 5, 13, 10, 0, 2, tzinfo=UTC),
        raw=RawPosition(partition=3, offset=1234, index=1),
        verification="sns-v2",
        bounce=BounceDetail(code="5.1.1", reason="smtp; 550 5.1.1 user unknown"),
    )


def test_a_real_canonical_event_validates_against_its_schema() -> None:
    event = a_real_event()
    schema = json.loads(generate()["canonical_event.json"])
    jsonschema.validate(json.loads(event.model_dump_json()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**json.loads(event.model_dump_json()), "type": "lost"}, schema)


def test_a_batch_as_the_normaliser_encodes_it_validates_against_the_batch_schema() -> None:
    event = a_real_event()
    other = event.model_copy(update={"recipient": "joe@example.com", "type": "delivered"})
    batch = encode_batch([e.model_dump_json().encode() for e in (event, other)])
    schema = json.loads(generate()["canonical_event_batch.json"])
    jsonschema.validate(json.loads(batch), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{**json.loads(event.model_dump_json()), "type": "lost"}], schema)
