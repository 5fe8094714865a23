"""Amazon SES events delivered by SNS over HTTPS: SNS message signature verification.

The body is the SNS JSON envelope. The signed string is ``Key\\nValue\\n`` for a fixed,
alphabetical list of fields per message type; SignatureVersion 1 is SHA1withRSA, 2 is
SHA256withRSA, with the key of the X.509 certificate at ``SigningCertURL``. That URL must
be https on ``sns.<region>.amazonaws.com[.cn]`` (checked before anything is fetched; TLS
then proves the host). The certificate's validity period is checked against ``now``.

No freshness check on ``Timestamp``: SNS retries keep the original signature and may do
so for up to an hour, and processors dedupe by ``MessageId``. Subscription and
unsubscribe confirmations verify like notifications and are returned with their own
``kind``; ingest never visits ``SubscribeURL`` itself (an operator confirms).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ingest.errors import VerificationError
from ingest.signatures.base import (
    CertFetcher,
    Verified,
    WebhookRequest,
    decode_b64,
    optional_header,
)
from ingest.signatures.certs import CertificateCache, check_certificate_url

KINDS = {
    "Notification": "notification",
    "SubscriptionConfirmation": "subscription_confirmation",
    "UnsubscribeConfirmation": "unsubscribe_confirmation",
}
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
OPTIONAL_FIELDS = frozenset({"Subject"})
KEPT_HEADERS = (
    "x-amz-sns-message-type",
    "x-amz-sns-message-id",
    "x-amz-sns-topic-arn",
    "x-amz-sns-subscription-arn",
)
MAX_ID_CHARS = 256


@dataclass(frozen=True, slots=True)
class SnsEnvelope:
    """What the signature check needs from a parsed SNS message."""

    kind: str
    message_id: str
    signature_version: str
    signature: bytes
    cert_url: str
    canonical: bytes
    http_headers: Mapping[str, str]


def _field(message: Mapping[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str):
        raise VerificationError("malformed_body", f"{name} missing")
    return value


def parse_sns(
    body: bytes, headers: Mapping[str, str], topic_arns: Sequence[str] = ()
) -> SnsEnvelope:
    """Parse and pre-check an SNS envelope: fields, topic allowlist, certificate URL."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        raise VerificationError("malformed_body", "not JSON") from None
    if not isinstance(message, dict):
        raise VerificationError("malformed_body", "not a JSON object")
    msg_type = message.get("Type")
    if not isinstance(msg_type, str) or msg_type not in KINDS:
        raise VerificationError("malformed_body", "unknown Type")
    fields = NOTIFICATION_FIELDS if msg_type == "Notification" else CONFIRMATION_FIELDS
    canonical = []
    for name in fields:
        if name in OPTIONAL_FIELDS and message.get(name) is None:
            continue
        canonical.append(f"{name}\n{_field(message, name)}\n")

    message_id = _field(message, "MessageId")
    if not 0 < len(message_id) <= MAX_ID_CHARS:
        raise VerificationError("malformed_body", "MessageId")
    version = _field(message, "SignatureVersion")
    if version not in ("1", "2"):
        raise VerificationError("malformed_body", "SignatureVersion")
    signature = decode_b64(_field(message, "Signature"), reason="malformed_body")
    if topic_arns and message["TopicArn"] not in topic_arns:
        raise VerificationError("topic_not_allowed")
    cert_url = _field(message, "SigningCertURL")
    check_certificate_url(cert_url)
    kept = {h: v for h in KEPT_HEADERS if (v := optional_header(headers, h)) is not None}
    try:
        canonical_bytes = "".join(canonical).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (\ud800 escapes) cannot have been signed
        raise VerificationError("malformed_body", "not UTF-8") from None
    return SnsEnvelope(
        kind=KINDS[msg_type],
        message_id=message_id,
        signature_version=version,
        signature=signature,
        cert_url=cert_url,
        canonical=canonical_bytes,
        http_headers=kept,
    )


def verify_sns(envelope: SnsEnvelope, certificate: x509.Certificate, now: float) -> Verified:
    """Check the envelope's signature with the certificate's RSA key, valid at ``now``."""
    at = datetime.fromtimestamp(now, UTC)
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise VerificationError("certificate_error", "certificate not valid now")
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise VerificationError("certificate_error", "unreadable public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise VerificationError("certificate_error", "not an RSA key")
    algorithm: hashes.HashAlgorithm = (
        hashes.SHA1() if envelope.signature_version == "1" else hashes.SHA256()  # noqa: S303
    )
    try:
        key.verify(envelope.signature, envelope.canonical, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise VerificationError("bad_signature") from None
    return Verified(
        method=f"sns-v{envelope.signature_version}",
        delivery_id=envelope.message_id,
        kind=envelope.kind,
        http_headers=envelope.http_headers,
    )


class SnsVerifier:
    """``Verifier`` for an SES-via-SNS source; fetches and caches signing certificates."""

    __slots__ = ("_certs", "_topic_arns")

    def __init__(self, fetch: CertFetcher, topic_arns: Sequence[str] = ()) -> None:
        self._certs = CertificateCache(fetch)
        self._topic_arns = tuple(topic_arns)

    def __repr__(self) -> str:
        return f"SnsVerifier(topic_arns={self._topic_arns!r}, cached_certs={len(self._certs)})"

    async def verify(self, request: WebhookRequest, now: float) -> Verified:
        envelope = parse_sns(request.body, request.headers, self._topic_arns)
        certificate = await self._certs.get(envelope.cert_url)
        return verify_sns(envelope, certificate, now)
