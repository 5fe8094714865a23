"""Mandrill (Mailchimp Transactional): ``X-Mandrill-Signature`` = base64 HMAC-SHA1(webhook
key, URL + each POST field's key and value, fields sorted by key, no separators).

The body is ``application/x-www-form-urlencoded`` with one field, ``mandrill_events`` (a
JSON array). The URL is the one registered at Mandrill, byte for byte; behind a proxy the
URL we see differs, so ``public_url`` in the source settings wins over the request's.
A repeated field counts once with its last value, as in Mandrill's reference code (PHP
``$_POST``). Events carry ids inside the JSON only; the caller keys by a body hash.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from ingest.errors import VerificationError
from ingest.signatures.base import (
    Verified,
    WebhookRequest,
    any_matches,
    decode_b64,
    header,
    require_secrets,
)

METHOD = "mandrill-hmac-sha1"
SIGNATURE_HEADER = "X-Mandrill-Signature"
MAX_FIELDS = 1000


def signed_payload(url: str, body: bytes) -> bytes:
    """URL followed by every form field's key and value, sorted by key."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError is one; so is "too many fields"
        raise VerificationError("malformed_body", "not a urlencoded form") from None
    fields = dict(pairs)
    parts = [url, *(key + fields[key] for key in sorted(fields))]
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from %-escapes cannot have been signed
        raise VerificationError("malformed_body", "not a urlencoded form") from None


def verify_mandrill(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[bytes], url: str
) -> Verified:
    """Accept when the header is the base64 HMAC-SHA1 of url + sorted form fields."""
    require_secrets(tuple(secrets))
    given = decode_b64(header(headers, SIGNATURE_HEADER, limit=128))
    signed = signed_payload(url, body)
    expected = (hmac.new(secret, signed, hashlib.sha1).digest() for secret in secrets)
    if not any_matches(expected, [given]):
        raise VerificationError("bad_signature")
    return Verified(method=METHOD)


class MandrillVerifier:
    """``Verifier`` for a Mandrill source."""

    __slots__ = ("_public_url", "_secrets")

    def __init__(self, secrets: Sequence[bytes], public_url: str | None = None) -> None:
        self._secrets = tuple(secrets)
        self._public_url = public_url

    def __repr__(self) -> str:  # never show secrets
        return f"MandrillVerifier(url={self._public_url!r}, secrets=<{len(self._secrets)}>)"

    async def verify(self, request: WebhookRequest, now: float) -> Verified:
        url = self._public_url or request.url
        return verify_mandrill(request.body, request.headers, self._secrets, url)
