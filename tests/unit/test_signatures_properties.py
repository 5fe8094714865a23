"""Properties over every scheme: garbage only ever yields VerificationError, signed requests
always verify, and any one flipped body byte never does."""

from __future__ import annotations

import asyncio
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from pydantic import SecretStr

from ingest.errors import VerificationError
from ingest.settings import SourceSettings
from ingest.signatures import Verified, Verifier, WebhookRequest, build_verifier
from schemas.common import PROVIDER_KINDS
from tests.fixtures.signing import SIGNATURE_HEADERS, mandrill_form, sendgrid_keys, ses_signer, sign

NOW = 1_700_000_000.0
SENDGRID = sendgrid_keys()
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# What each kind is configured with, and what ``sign`` takes to produce a valid request.
CONFIG = {
    "nexuspromail": ("nexus-secret", "nexus-secret"),
    "generic": ("generic-secret", "generic-secret"),
    "svix": (WHSEC, WHSEC),
    "resend": (WHSEC, WHSEC),
    "sendgrid": (SENDGRID.public_key, SENDGRID.private_key),
    "mailgun": ("mailgun-key", "mailgun-key"),
    "postmark": ("user:pass", "user:pass"),
    "ses": ("unused", "unused"),
    "mandrill": ("mandrill-key", "mandrill-key"),
}
HEADER_NAMES = list(SIGNATURE_HEADERS)
REASONS = {
    "missing_header",
    "malformed_header",
    "bad_signature",
    "stale_timestamp",
    "replayed_token",
    "ip_not_allowed",
    "bad_certificate_url",
    "certificate_error",
    "no_secret",
    "malformed_body",
    "topic_not_allowed",
}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_text = st.text(st.characters(exclude_categories=()), max_size=80)
plausible = st.one_of(
    any_text,
    st.text(string.hexdigits, min_size=60, max_size=68),
    st.integers(int(NOW) - 400, int(NOW) + 400).map(str),
    st.builds(lambda s: "v1," + s, st.text(string.ascii_letters + string.digits + "+/=")),
    st.builds(lambda s: "Basic " + s, st.text(string.ascii_letters + "=")),
    st.text(string.printable, min_size=4000, max_size=5000),
)
headers_strategy = st.dictionaries(st.sampled_from(HEADER_NAMES), plausible, max_size=6)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text, plausible
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "signature",
                    "timestamp",
                    "token",
                    "parent-signature",
                    "id",
                    "event-data",
                    "Type",
                    "Message",
                    "MessageId",
                    "TopicArn",
                    "Timestamp",
                    "Signature",
                    "SignatureVersion",
                    "SigningCertURL",
                    "Subject",
                    "Token",
                    "SubscribeURL",
                ]
            ),
            inner,
            max_size=6,
        ),
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=200).map(lambda t: ("mandrill_events=" + t).encode()),
)


def make_verifier(kind: str) -> Verifier:
    configured, _ = CONFIG[kind]
    source = SourceSettings(kind=kind, secrets=(SecretStr(configured),))  # type: ignore[arg-type]
    return build_verifier(source, cert_fetcher=ses_signer().fetch)


def run(
    verifier: Verifier, body: bytes, headers: dict[str, str], remote: str | None = None
) -> Verified:
    request = WebhookRequest(
        body=body, headers=CIMultiDict(headers), url="http://127.0.0.1/webhooks/x", remote=remote
    )
    return asyncio.run(verifier.verify(request, NOW))


def outcome(
    verifier: Verifier, body: bytes, headers: dict[str, str], remote: str | None = None
) -> Verified | VerificationError:
    try:
        return run(verifier, body, headers, remote)
    except VerificationError as exc:
        return exc


@SETTINGS
@given(
    kind=st.sampled_from(PROVIDER_KINDS),
    body=bodies,
    headers=headers_strategy,
    remote=st.one_of(st.none(), any_text),
)
def test_garbage_is_only_ever_a_verification_error(
    kind: str, body: bytes, headers: dict[str, str], remote: str | None
) -> None:
    result = outcome(make_verifier(kind), body, headers, remote)
    assert isinstance(result, Verified) or result.reason in REASONS


sns_fields = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(json_leaf, st.just(ses_signer().cert_url))
        for name in [
            "Type",
            "Message",
            "MessageId",
            "TopicArn",
            "Timestamp",
            "Signature",
            "SignatureVersion",
            "SigningCertURL",
            "Subject",
            "Token",
            "SubscribeURL",
        ]
    },
)


@SETTINGS
@given(fields=sns_fields)
def test_ses_garbage_envelopes_are_only_ever_verification_errors(fields: dict[str, Any]) -> None:
    result = outcome(make_verifier("ses"), json.dumps(fields).encode(), {})
    assert isinstance(result, VerificationError)
    assert result.reason in REASONS


BODY_SIGNED = ["nexuspromail", "generic", "svix", "resend", "sendgrid"]


@SETTINGS
@given(kind=st.sampled_from(BODY_SIGNED), body=st.binary(max_size=300), data=st.data())
def test_signed_bodies_verify_and_any_flipped_byte_does_not(
    kind: str, body: bytes, data: st.DataObject
) -> None:
    signed_body, headers = sign(kind, body, CONFIG[kind][1], now=NOW)
    verifier = make_verifier(kind)
    assert run(verifier, signed_body, headers).method
    if signed_body:
        position = data.draw(st.integers(0, len(signed_body) - 1))
        bit = data.draw(st.integers(0, 7))
        flipped = bytearray(signed_body)
        flipped[position] ^= 1 << bit
        with pytest.raises(VerificationError) as info:
            run(verifier, bytes(flipped), headers)
        assert info.value.reason == "bad_signature"


@SETTINGS
@given(
    events=st.text(max_size=200), kind=st.sampled_from(["mandrill", "mailgun", "postmark", "ses"])
)
def test_signed_requests_of_the_other_schemes_verify(events: str, kind: str) -> None:
    if kind == "mandrill":
        body = mandrill_form(events.encode())
    elif kind == "mailgun":
        body = json.dumps({"event-data": {"event": events}}).encode()
    else:
        body = events.encode()
    signed_body, headers = sign(
        kind, body, CONFIG[kind][1], now=NOW, url="http://127.0.0.1/webhooks/x"
    )
    assert run(make_verifier(kind), signed_body, headers).method
