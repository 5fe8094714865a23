"""Hex HMAC-SHA256 of the raw body in one header: NexusProMail (seeds 000/002) and the
generic platform (seed 003). Neither signs a timestamp or sends an event id, so there is
no freshness check here and the caller keys the record by a body hash."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from ingest.errors import VerificationError
from ingest.signatures.base import (
    Verified,
    WebhookRequest,
    any_matches,
    decode_hex,
    header,
    require_secrets,
)

NEXUSPROMAIL_HEADER = "X-NexusProMail-Signature"
GENERIC_HEADER = "X-Webhook-Signature"
NEXUSPROMAIL_METHOD = "nexuspromail-hmac-sha256"
GENERIC_METHOD = "generic-hmac-sha256"


def verify_hmac_body(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[bytes],
    *,
    header_name: str,
    method: str,
) -> Verified:
    """Accept when ``header_name`` is the hex HMAC-SHA256 of the raw body under any secret.

    Only the bare 64-digit hex digest is accepted (either case); no ``sha256=`` prefix.
    """
    require_secrets(tuple(secrets))
    given = decode_hex(header(headers, header_name, limit=128), hashlib.sha256().digest_size)
    expected = (hmac.new(secret, body, hashlib.sha256).digest() for secret in secrets)
    if not any_matches(expected, [given]):
        raise VerificationError("bad_signature")
    return Verified(method=method)


class HmacBodyVerifier:
    """``Verifier`` for one hex-HMAC-of-the-body source."""

    __slots__ = ("_header", "_method", "_secrets")

    def __init__(self, secrets: Sequence[bytes], header_name: str, method: str) -> None:
        self._secrets = tuple(secrets)
        self._header = header_name
        self._method = method

    def __repr__(self) -> str:  # never show secrets
        return f"HmacBodyVerifier(header={self._header!r}, secrets=<{len(self._secrets)}>)"

    async def verify(self, request: WebhookRequest, now: float) -> Verified:
        return verify_hmac_body(
            request.body,
            request.headers,
            self._secrets,
            header_name=self._header,
            method=self._method,
        )
