"""Mailgun: HMAC of timestamp + token inside the JSON body, tolerance and the token cache."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from ingest.errors import VerificationError
from ingest.settings import SourceSettings
from ingest.signatures import Verifier, WebhookRequest, build_verifier
from ingest.signatures.mailgun import TokenCache
from tests.fixtures.signing import sign, sign_mailgun

NOW = 1_700_000_000.0
KEY = "key-mailgun-test"
TOKEN = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
# printf '%s' 1700000000<TOKEN> | openssl dgst -sha256 -hmac key-mailgun-test
KNOWN_SIG = "62aa86de7e5b93d7848a5f7de54faccde0124d30afcc0a105a050487cae5bc7c"
EVENT = {"event": "failed", "severity": "permanent", "recipient": "a@example.com", "id": "ev-1"}


def payload(signature: dict[str, Any] | None = None, event: object = EVENT) -> bytes:
    block = {"timestamp": "1700000000", "token": TOKEN, "signature": KNOWN_SIG}
    if signature is not None:
        block.update(signature)
    return json.dumps({"signature": block, "event-data": event}).encode()


def verifier(*secrets: str, tolerance_s: int = 300) -> Verifier:
    source = SourceSettings(
        kind="mailgun", secrets=tuple(SecretStr(s) for s in secrets), tolerance_s=tolerance_s
    )
    return build_verifier(source)


def request(body: bytes) -> WebhookRequest:
    return WebhookRequest(body=body, headers=CIMultiDict(), url="http://x/webhooks/mailgun")


async def reason(v: Verifier, body: bytes, now: float = NOW) -> str:
    with pytest.raises(VerificationError) as info:
        await v.verify(request(body), now)
    return info.value.reason


async def test_known_vector_is_accepted_and_keyed_by_event_id() -> None:
    verified = await verifier(KEY).verify(request(payload()), NOW)
    assert verified.method == "mailgun-hmac"
    assert verified.delivery_id == "ev-1"


async def test_without_an_event_id_the_token_is_the_delivery_id() -> None:
    body = payload(event={"event": "delivered"})
    assert (await verifier(KEY).verify(request(body), NOW)).delivery_id == TOKEN


async def test_integer_timestamp_is_accepted() -> None:
    assert (await verifier(KEY).verify(request(payload({"timestamp": 1700000000})), NOW)).method


async def test_flipped_signature_or_token_byte_is_bad_signature() -> None:
    flipped = KNOWN_SIG[:10] + ("0" if KNOWN_SIG[10] != "0" else "1") + KNOWN_SIG[11:]
    assert await reason(verifier(KEY), payload({"signature": flipped})) == "bad_signature"
    assert await reason(verifier(KEY), payload({"token": "b" + TOKEN[1:]})) == "bad_signature"
    assert await reason(verifier(KEY), payload({"timestamp": "1700000001"})) == "bad_signature"


async def test_signature_reused_on_another_body_is_replayed_token() -> None:
    # The body is not signed: the token cache is what stops a captured signature being
    # pasted onto a forged body.
    v = verifier(KEY)
    assert (await v.verify(request(payload()), NOW)).delivery_id == "ev-1"
    forged = payload(event={**EVENT, "recipient": "victim@example.com"})
    assert await reason(v, forged, NOW + 1) == "replayed_token"


async def test_identical_retry_is_accepted() -> None:
    # A retry of a request we answered 503 may carry the same token; processors dedupe it.
    v = verifier(KEY)
    for _ in range(3):
        assert (await v.verify(request(payload()), NOW)).delivery_id == "ev-1"


async def test_rotated_keys_both_accepted_and_parent_signature_counts() -> None:
    v = verifier("old-key", "new-key")
    for key in ("old-key", "new-key"):
        body, _ = sign("mailgun", json.dumps({"event-data": EVENT}).encode(), key, now=NOW)
        assert (await v.verify(request(body), NOW)).delivery_id == "ev-1"
    body = sign_mailgun(b'{"event-data": {}}', "someone-else", now=NOW)
    assert await reason(v, body) == "bad_signature"
    # A subaccount's event: signature under its own key, parent-signature under ours.
    sub = json.loads(sign_mailgun(b"{}", "subaccount-key", now=NOW))
    ours = json.loads(sign_mailgun(b"{}", KEY, now=NOW, token=sub["signature"]["token"]))
    sub["signature"]["parent-signature"] = ours["signature"]["signature"]
    assert (await verifier(KEY).verify(request(json.dumps(sub).encode()), NOW)).method


@pytest.mark.parametrize(
    ("skew", "accepted"), [(300, True), (-300, True), (301, False), (-301, False)]
)
async def test_timestamp_tolerance(skew: int, accepted: bool) -> None:
    if accepted:
        assert (await verifier(KEY).verify(request(payload()), NOW + skew)).method
    else:
        assert await reason(verifier(KEY), payload(), NOW + skew) == "stale_timestamp"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'"signature"',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"event-data": {}}',
        b'{"signature": "x"}',
        b'{"signature": {"timestamp": "1700000000", "token": "t"}}',
        payload({"timestamp": True}),
        payload({"timestamp": "17e8"}),
        payload({"timestamp": -1700000000}),
        payload({"timestamp": "1" * 40}),
        payload({"token": 12}),
        payload({"token": ""}),
        payload({"token": "t" * 1000}),
        payload({"token": "\u00e9" * 50}),
        payload({"signature": "zz" * 32}),
        payload({"signature": KNOWN_SIG[:-2]}),
        payload({"signature": KNOWN_SIG + "00"}),
        payload({"signature": None}),
        payload({"parent-signature": "nope"}),
    ],
)
async def test_garbage_bodies_are_malformed_body(body: bytes) -> None:
    assert await reason(verifier(KEY), body) == "malformed_body"


async def test_no_secret_configured_rejects() -> None:
    assert await reason(verifier(), payload()) == "no_secret"


def test_token_cache_is_bounded_and_pruned_by_time() -> None:
    cache = TokenCache(max_entries=3)
    for i in range(5):
        assert cache.admit(f"t{i}", b"d", expires_at=100 + i, now=50)
    assert len(cache) == 3
    assert not cache.admit("t4", b"other", expires_at=104, now=50)
    assert cache.admit("t0", b"other", expires_at=200, now=50)  # evicted: unknown again
    cache.admit("late", b"d", expires_at=300, now=150)  # prunes everything expired by 150
    assert len(cache) == 2


def test_repr_never_shows_a_secret() -> None:
    assert KEY not in repr(verifier(KEY))
