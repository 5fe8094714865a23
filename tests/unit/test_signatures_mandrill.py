"""Mandrill: base64 HMAC-SHA1 of the webhook URL + sorted form fields."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from ingest.errors import VerificationError
from ingest.settings import SourceSettings
from ingest.signatures import Verifier, WebhookRequest, build_verifier
from tests.fixtures.signing import mandrill_form, sign

NOW = 1_700_000_000.0
URL = "https://hooks.example.com/webhooks/mandrill"
KEY = "mandrill-test-key"
# The form Mandrill posts for mandrill_events=[{"event":"hard_bounce","_id":"x1"}].
BODY = b"mandrill_events=%5B%7B%22event%22%3A%22hard_bounce%22%2C%22_id%22%3A%22x1%22%7D%5D"
# printf '%s' "$URL"'mandrill_events[{"event":"hard_bounce","_id":"x1"}]'
#   | openssl dgst -sha1 -hmac mandrill-test-key -binary | base64
KNOWN_SIG = "DMogSom5CS3iIWNkYWj/HnZHw00="
HEADER = "X-Mandrill-Signature"


def verifier(*secrets: str, public_url: str | None = None) -> Verifier:
    source = SourceSettings(
        kind="mandrill", secrets=tuple(SecretStr(s) for s in secrets), public_url=public_url
    )
    return build_verifier(source)


def request(body: bytes, headers: dict[str, str], url: str = URL) -> WebhookRequest:
    return WebhookRequest(body=body, headers=CIMultiDict(headers), url=url)


async def reason(v: Verifier, body: bytes, headers: dict[str, str], url: str = URL) -> str:
    with pytest.raises(VerificationError) as info:
        await v.verify(request(body, headers, url), NOW)
    return info.value.reason


async def test_known_vector_is_accepted() -> None:
    verified = await verifier(KEY).verify(request(BODY, {HEADER: KNOWN_SIG}), NOW)
    assert verified.method == "mandrill-hmac-sha1"
    assert verified.delivery_id is None


async def test_fixture_builds_the_same_form_and_signature() -> None:
    body = mandrill_form(b'[{"event":"hard_bounce","_id":"x1"}]')
    _, headers = sign("mandrill", body, KEY, now=NOW, url=URL)
    assert headers[HEADER] == KNOWN_SIG


async def test_the_url_is_signed_and_public_url_wins_behind_a_proxy() -> None:
    seen_by_us = "http://10.0.0.5:8080/webhooks/mandrill"
    assert await reason(verifier(KEY), BODY, {HEADER: KNOWN_SIG}, url=seen_by_us) == (
        "bad_signature"
    )
    v = verifier(KEY, public_url=URL)
    assert (await v.verify(request(BODY, {HEADER: KNOWN_SIG}, url=seen_by_us), NOW)).method


async def test_fields_are_signed_sorted_by_key() -> None:
    body = b"zeta=1&alpha=%C3%A9+x&mandrill_events=%5B%5D"
    _, headers = sign("mandrill", body, KEY, now=NOW, url=URL)
    assert (await verifier(KEY).verify(request(body, headers), NOW)).method
    reordered = b"alpha=%C3%A9+x&mandrill_events=%5B%5D&zeta=1"
    assert (await verifier(KEY).verify(request(reordered, headers), NOW)).method


async def test_one_flipped_body_byte_is_bad_signature() -> None:
    body = bytearray(BODY)
    body[-5] ^= 0x01
    assert await reason(verifier(KEY), bytes(body), {HEADER: KNOWN_SIG}) == "bad_signature"


async def test_rotated_keys_are_both_accepted() -> None:
    v = verifier("old-key", "new-key")
    for key in ("old-key", "new-key"):
        _, headers = sign("mandrill", BODY, key, now=NOW, url=URL)
        assert (await v.verify(request(BODY, headers), NOW)).method
    _, headers = sign("mandrill", BODY, "other-key", now=NOW, url=URL)
    assert await reason(v, BODY, headers) == "bad_signature"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "missing_header"),
        ("not base64!", "malformed_header"),
        (KNOWN_SIG[:-1], "malformed_header"),
        ("\u00e9" * 28, "malformed_header"),
        ("A" * 5000, "malformed_header"),
        ("AAAA", "bad_signature"),
    ],
)
async def test_garbage_headers(value: str, expected: str) -> None:
    assert await reason(verifier(KEY), BODY, {HEADER: value}) == expected


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe", b"mandrill_events=%ff", b"a=1&" * 2000],
)
async def test_garbage_bodies_are_malformed_body(body: bytes) -> None:
    assert await reason(verifier(KEY), body, {HEADER: KNOWN_SIG}) == "malformed_body"


async def test_missing_header_and_missing_secret() -> None:
    assert await reason(verifier(KEY), BODY, {}) == "missing_header"
    assert await reason(verifier(), BODY, {HEADER: KNOWN_SIG}) == "no_secret"
    assert KEY not in repr(verifier(KEY))
