"""What holds for every provider: dispatch, control messages, error reasons, and that no
input whatsoever makes ``normalise`` raise anything but ``NormaliseError``."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.errors import NormaliseError
from processors.normalise import NormaliseOptions, normalise
from schemas.common import PROVIDER_KINDS
from schemas.events import CanonicalEvent
from tests.fixtures.payloads import load, mandrill_form, raw, reason, sns_envelope

JSON_PROVIDERS = [p for p in PROVIDER_KINDS if p != "mandrill"]
# One realistic body per provider, as parsed JSON (the SES one is the inner SES event).
SAMPLES: dict[str, str] = {
    "nexuspromail": "nexuspromail_bounced_hard.json",
    "generic": "generic_bounced.json",
    "resend": "resend_bounced.json",
    "svix": "resend_clicked.json",
    "sendgrid": "sendgrid_batch.json",
    "mailgun": "mailgun_failed_permanent.json",
    "postmark": "postmark_bounce.json",
    "ses": "ses_bounce_message.json",
    "mandrill": "mandrill_events.json",
}


def wrap(provider: str, document: bytes) -> bytes:
    """A provider document as the body the provider posts."""
    if provider == "ses":
        return sns_envelope(document, message_id="sns-fuzz")
    if provider == "mandrill":
        return mandrill_form(document)
    return document


def test_every_provider_kind_has_a_mapping() -> None:
    for provider in PROVIDER_KINDS:
        events = normalise(raw(provider, wrap(provider, load(SAMPLES[provider]))), OPTIONS)
        assert events, provider
        assert all(e.provider == provider for e in events)


def test_unknown_provider_and_a_record_without_position() -> None:
    assert reason(raw("carrier-pigeon", b"{}")) == "unknown_provider"
    record = raw("generic", load("generic_bounced.json"))
    unread = type(record)(**{**_fields(record), "partition": None, "offset": None})
    with pytest.raises(ValueError, match="partition"):
        normalise(unread, OPTIONS)


def test_control_messages_of_any_provider_are_nothing_to_do() -> None:
    record = raw("ses", b"not even json", kind="unsubscribe_confirmation")
    assert normalise(record, OPTIONS) == []


@pytest.mark.parametrize("provider", JSON_PROVIDERS)
@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe{}", b'{"type": "x",}', b"NaN-ish"])
def test_not_json_is_invalid_json(provider: str, body: bytes) -> None:
    assert reason(raw(provider, body)) == "invalid_json"


@pytest.mark.parametrize("provider", JSON_PROVIDERS)
@pytest.mark.parametrize("body", [b"null", b"42", b'"text"', b"[[]]", b'{"a": 1}'])
def test_json_of_the_wrong_shape_is_invalid_payload(provider: str, body: bytes) -> None:
    if provider == "sendgrid" and body == b'{"a": 1}':
        body = b'[{"a": 1}]'
    assert reason(raw(provider, body)) == "invalid_payload"


def test_the_error_detail_names_fields_never_values() -> None:
    secret = "very.private.person@example.com"
    body = orjson.dumps({"type": "email.delivered", "email_id": ["x"], "recipient": secret})
    with pytest.raises(NormaliseError) as info:
        normalise(raw("generic", body), OPTIONS)
    assert info.value.reason == "invalid_payload"
    assert "email_id" in info.value.detail
    assert secret not in str(info.value)


# -- properties ---------------------------------------------------------------------------

OPTIONS = NormaliseOptions()
options_strategy = st.builds(
    NormaliseOptions,
    lowercase_local_part=st.booleans(),
    strip_plus_tags=st.booleans(),
    unclassified_bounce=st.sampled_from(["hard", "soft"]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "a@b.c", "Permanent", "failed", "Bounce", "2026-05-13T10:00:00Z"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document (the root included)."""
    paths = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            paths += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            paths += _paths(value, (*prefix, i))
    return paths


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        return {**document, head: _replaced(document[head], rest, value)}
    return [_replaced(v, rest, value) if i == head else v for i, v in enumerate(document)]


def _outcome_is_events_or_normalise_error(provider: str, body: bytes, options: Any) -> None:
    error: NormaliseError | None = None
    try:
        events = normalise(raw(provider, body), options)
    except NormaliseError as exc:
        error, events = exc, []
    if error is not None:
        assert error.reason
        assert error.retriable is False
    assert isinstance(events, list)
    assert all(isinstance(e, CanonicalEvent) for e in events)
    # What the agent does next must work too: serialise and key by address/message id.
    for e in events:
        e.model_dump_json()
        e.recipient.encode()
        (e.message_id or "").encode()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(provider=st.sampled_from(PROVIDER_KINDS), body=st.binary(max_size=512))
def test_arbitrary_bytes_give_events_or_a_normalise_error(provider: str, body: bytes) -> None:
    _outcome_is_events_or_normalise_error(provider, body, OPTIONS)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), provider=st.sampled_from(PROVIDER_KINDS), options=options_strategy)
def test_real_payloads_with_one_value_replaced_give_events_or_a_normalise_error(
    data: st.DataObject, provider: str, options: NormaliseOptions
) -> None:
    document = orjson.loads(load(SAMPLES[provider]))
    path = data.draw(st.sampled_from(_paths(document)), label="path")
    value = data.draw(json_values, label="value")
    # json, not orjson: hypothesis's integers exceed 64 bits, which providers may send too.
    mutated = json.dumps(_replaced(document, path, value)).encode()
    _outcome_is_events_or_normalise_error(provider, wrap(provider, mutated), options)
