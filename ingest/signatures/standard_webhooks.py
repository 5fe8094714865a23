"""Standard Webhooks (https://www.standardwebhooks.com), as sent by Svix and Resend.

Signed content is ``{id}.{timestamp}.{raw body}``; the signature header holds one or more
space-separated ``v1,<base64 HMAC-SHA256>`` entries (several during key rotation) and may
hold entries of other versions (``v1a`` = asymmetric), which are ignored.

Why not ``standardwebhooks.Webhook.verify`` (1.1.0): it reads its own clock (we need
``now`` as a parameter) with a fixed 5-minute tolerance, knows only the ``webhook-*``
headers (Resend and Svix send ``svix-*``), decodes the body as UTF-8 and raises
``UnicodeDecodeError``/``ValueError``/``binascii.Error`` on garbage instead of its own
error, and signs the floored float of the timestamp rather than the header as sent. So
this module follows the specification directly with ``hmac``; the tests check it against
the specification's published vector and against the library's own ``sign``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from ingest.errors import ConfigError, VerificationError
from ingest.signatures.base import (
    Verified,
    WebhookRequest,
    any_matches,
    check_fresh,
    header,
    parse_unix_seconds,
    require_secrets,
)

METHOD = "standard-webhooks-v1"
SECRET_PREFIX = "whsec_"  # noqa: S105  (a format marker, not a secret)
# Header families: the specification's names first, then Svix's (used by Resend too).
PREFIXES = ("webhook-", "svix-")
MAX_ID_CHARS = 256
MAX_SIGNATURES = 16


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional, padding too)."""
    raw = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("a Standard Webhooks secret is not whsec_ + base64") from None
    if not key:
        raise ConfigError("a Standard Webhooks secret is empty")
    return key


def _header_prefix(headers: Mapping[str, str]) -> str:
    for prefix in PREFIXES:
        if headers.get(prefix + "id") is not None:
            return prefix
    raise VerificationError("missing_header", "webhook-id")


def _v1_signatures(value: str) -> list[bytes]:
    entries = value.split()
    if len(entries) > MAX_SIGNATURES:
        raise VerificationError("malformed_header", "too many signatures")
    found = []
    for entry in entries:
        version, sep, encoded = entry.partition(",")
        if not sep or version != "v1" or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue  # one unreadable entry must not hide a valid one next to it
    if not found:
        raise VerificationError("malformed_header", "no v1 signature")
    return found


def verify_standard_webhook(
    body: bytes,
    headers: Mapping[str, str],
    keys: Sequence[bytes],
    now: float,
    tolerance_s: float = 300,
) -> Verified:
    """Accept when any ``v1`` signature is valid under any key and the timestamp is fresh."""
    require_secrets(tuple(keys))
    prefix = _header_prefix(headers)
    msg_id = header(headers, prefix + "id", limit=MAX_ID_CHARS)
    raw_ts = header(headers, prefix + "timestamp", limit=32)
    check_fresh(parse_unix_seconds(raw_ts), now, tolerance_s)
    given = _v1_signatures(header(headers, prefix + "signature"))
    signed = f"{msg_id}.{raw_ts}.".encode() + body
    expected = (hmac.new(key, signed, hashlib.sha256).digest() for key in keys)
    if not any_matches(expected, given):
        raise VerificationError("bad_signature")
    return Verified(
        method=METHOD,
        delivery_id=msg_id,
        http_headers={prefix + "id": msg_id, prefix + "timestamp": raw_ts},
    )


class StandardWebhooksVerifier:
    """``Verifier`` for a Svix or Resend source."""

    __slots__ = ("_keys", "_tolerance_s")

    def __init__(self, secrets: Sequence[str], tolerance_s: float = 300) -> None:
        self._keys = tuple(decode_secret(s) for s in secrets)
        self._tolerance_s = tolerance_s

    def __repr__(self) -> str:  # never show secrets
        return f"StandardWebhooksVerifier(secrets=<{len(self._keys)}>)"

    async def verify(self, request: WebhookRequest, now: float) -> Verified:
        return verify_standard_webhook(
            request.body, request.headers, self._keys, now, self._tolerance_s
        )
