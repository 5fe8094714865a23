"""SendGrid (Twilio) signed Event Webhook: ECDSA P-256 / SHA-256 over ``timestamp + body``.

The signature header is a base64 DER ECDSA signature; the timestamp header is unix
seconds, signed as the exact bytes sent. The "secret" is the verification key SendGrid
shows: a base64 DER SubjectPublicKeyInfo. One POST batches several events, so there is
no single delivery id and the caller keys the record by a body hash.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ingest.errors import ConfigError, VerificationError
from ingest.signatures.base import (
    Verified,
    WebhookRequest,
    check_fresh,
    decode_b64,
    header,
    parse_unix_seconds,
    require_secrets,
)

METHOD = "sendgrid-ecdsa"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# A DER P-256 signature is at most 72 bytes; allow room, refuse anything absurd.
MAX_SIGNATURE_CHARS = 256


def load_public_key(secret: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a base64 DER SubjectPublicKeyInfo; ConfigError otherwise."""
    try:
        key = load_der_public_key(base64.b64decode(secret.strip(), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise ConfigError("a SendGrid verification key is not base64 DER") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("a SendGrid verification key is not an ECDSA P-256 key")
    return key


def verify_sendgrid(
    body: bytes,
    headers: Mapping[str, str],
    public_keys: Sequence[ec.EllipticCurvePublicKey],
    now: float,
    tolerance_s: float = 300,
) -> Verified:
    """Accept when the signature verifies under any key and the timestamp is fresh."""
    require_secrets(tuple(public_keys))
    signature = decode_b64(header(headers, SIGNATURE_HEADER, limit=MAX_SIGNATURE_CHARS))
    raw_ts = header(headers, TIMESTAMP_HEADER, limit=32)
    check_fresh(parse_unix_seconds(raw_ts), now, tolerance_s)
    signed = raw_ts.encode() + body
    matched = False
    for key in public_keys:  # public keys: no secret to leak through timing
        try:
            key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        matched = True
        break
    if not matched:
        raise VerificationError("bad_signature")
    return Verified(method=METHOD, http_headers={TIMESTAMP_HEADER.lower(): raw_ts})


class SendGridVerifier:
    """``Verifier`` for a SendGrid source."""

    __slots__ = ("_keys", "_tolerance_s")

    def __init__(self, secrets: Sequence[str], tolerance_s: float = 300) -> None:
        self._keys = tuple(load_public_key(s) for s in secrets)
        self._tolerance_s = tolerance_s

    def __repr__(self) -> str:
        return f"SendGridVerifier(keys=<{len(self._keys)}>)"

    async def verify(self, request: WebhookRequest, now: float) -> Verified:
        return verify_sendgrid(request.body, request.headers, self._keys, now, self._tolerance_s)
