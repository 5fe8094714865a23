"""SendGrid signed Event Webhook: ECDSA P-256/SHA-256 over timestamp + body."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from multidict import CIMultiDict
from pydantic import SecretStr

from ingest.errors import ConfigError, VerificationError
from ingest.settings import SourceSettings
from ingest.signatures import Verifier, WebhookRequest, build_verifier
from tests.fixtures.signing import sendgrid_keys, sign

NOW = 1_700_000_000.0
BODY = (
    b'[{"email":"a@example.com","timestamp":1700000000,"event":"bounce","type":"blocked",'
    b'"sg_event_id":"ev1","sg_message_id":"m1.filter"}]\r\n'
)
SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


def public_b64(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def verifier(*public_keys: str, tolerance_s: int = 300) -> Verifier:
    source = SourceSettings(
        kind="sendgrid",
        secrets=tuple(SecretStr(k) for k in public_keys),
        tolerance_s=tolerance_s,
    )
    return build_verifier(source)


def request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest(body=body, headers=CIMultiDict(headers), url="http://x/webhooks/sg")


async def reason(v: Verifier, body: bytes, headers: dict[str, str], now: float = NOW) -> str:
    with pytest.raises(VerificationError) as info:
        await v.verify(request(body, headers), now)
    return info.value.reason


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def signed_by(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> dict[str, str]:
    # Signed here with cryptography directly, the way Twilio's docs describe it.
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIG: base64.b64encode(signature).decode(), TS: timestamp}


async def test_signature_made_in_the_test_is_accepted(key: ec.EllipticCurvePrivateKey) -> None:
    verified = await verifier(public_b64(key)).verify(
        request(BODY, signed_by(key, BODY, "1700000000")), NOW
    )
    assert verified.method == "sendgrid-ecdsa"
    assert verified.delivery_id is None  # a batch of events: the caller hashes the body
    assert dict(verified.http_headers) == {TS.lower(): "1700000000"}


async def test_one_flipped_body_byte_is_bad_signature(key: ec.EllipticCurvePrivateKey) -> None:
    headers = signed_by(key, BODY, "1700000000")
    body = bytearray(BODY)
    body[10] ^= 0x01
    assert await reason(verifier(public_b64(key)), bytes(body), headers) == "bad_signature"


async def test_timestamp_is_signed(key: ec.EllipticCurvePrivateKey) -> None:
    headers = {**signed_by(key, BODY, "1700000000"), TS: "1700000001"}
    assert await reason(verifier(public_b64(key)), BODY, headers) == "bad_signature"


async def test_both_rotated_keys_are_accepted() -> None:
    old, new, other = sendgrid_keys(), sendgrid_keys(), sendgrid_keys()
    v = verifier(old.public_key, new.public_key)
    for keys in (old, new):
        body, headers = sign("sendgrid", BODY, keys.private_key, now=NOW)
        assert (await v.verify(request(body, headers), NOW)).method == "sendgrid-ecdsa"
    body, headers = sign("sendgrid", BODY, other.private_key, now=NOW)
    assert await reason(v, body, headers) == "bad_signature"


@pytest.mark.parametrize(
    ("skew", "accepted"), [(300, True), (-300, True), (301, False), (-301, False)]
)
async def test_stale_or_future_timestamp_is_rejected(
    key: ec.EllipticCurvePrivateKey, skew: int, accepted: bool
) -> None:
    v = verifier(public_b64(key))
    headers = signed_by(key, BODY, "1700000000")
    if accepted:
        assert (await v.verify(request(BODY, headers), NOW + skew)).method
    else:
        assert await reason(v, BODY, headers, NOW + skew) == "stale_timestamp"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({SIG: "not base64!"}, "malformed_header"),
        ({SIG: "AAAA"}, "bad_signature"),  # base64 but not a DER signature
        ({SIG: base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()}, "bad_signature"),
        ({SIG: "A" * 1000}, "malformed_header"),
        ({SIG: "\u00e9" * 8}, "malformed_header"),
        ({TS: "17e8"}, "malformed_header"),
        ({TS: "1700000000.5"}, "malformed_header"),
        ({TS: "\u0661\u0667\u0660\u0660"}, "malformed_header"),  # non-ASCII digits
        ({TS: ""}, "missing_header"),
        ({SIG: ""}, "missing_header"),
    ],
)
async def test_garbage_headers_are_verification_errors(
    key: ec.EllipticCurvePrivateKey, changes: dict[str, str], expected: str
) -> None:
    headers = {**signed_by(key, BODY, "1700000000"), **changes}
    assert await reason(verifier(public_b64(key)), BODY, headers) == expected


async def test_no_key_configured_rejects(key: ec.EllipticCurvePrivateKey) -> None:
    assert await reason(verifier(), BODY, signed_by(key, BODY, "1700000000")) == "no_secret"


def test_unusable_keys_are_config_errors() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p384 = ec.generate_private_key(ec.SECP384R1())
    for bad in (
        "not base64!",
        base64.b64encode(b"junk").decode(),
        public_b64(rsa_key),
        public_b64(p384),
    ):
        with pytest.raises(ConfigError):
            verifier(bad)
