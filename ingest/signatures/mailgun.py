"""Mailgun: the signature travels inside the JSON body and covers only ``timestamp + token``.

``{"signature": {"timestamp", "token", "signature"[, "parent-signature"]}, "event-data"}``,
``signature`` = hex HMAC-SHA256(key=webhook signing key, msg=timestamp + token).
``parent-signature`` (events of a subaccount) is the same under the primary account's key,
so a source configured with either key accepts.

The body itself is unsigned, so a captured signature could be pasted onto a forged body
within the tolerance window. The token cache closes that: a token is remembered with a
hash of the body it came with, and the same token with a *different* body is
``replayed_token``. The same token with the *same* body is accepted on purpose: it is a
retry of an event we may have answered 503 (append not durable), and Mailgun does not
document that retries carry a fresh token; rejecting it would lose the event, while
accepting it is harmless because processors dedupe by the event id. The cache is per
process; a replay to another ingest process is caught by that same downstream dedupe.

Only the JSON webhooks are supported; legacy form-encoded webhooks get ``malformed_body``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ingest.errors import VerificationError
from ingest.signatures.base import (
    Verified,
    WebhookRequest,
    any_matches,
    check_fresh,
    decode_hex,
    parse_unix_seconds,
    require_secrets,
)

METHOD = "mailgun-hmac"
MAX_TOKEN_CHARS = 256
MAX_ID_CHARS = 256


class TokenCache:
    """Recently seen tokens and the digest of the body each came with; bounded, time-pruned."""

    __slots__ = ("_max", "_seen")

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._seen: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, token: str, body_digest: bytes, expires_at: float, now: float) -> bool:
        """Remember ``token``; False if it was already seen with a different body."""
        self._prune(now)
        seen = self._seen.get(token)
        if seen is not None:
            return seen[1] == body_digest
        self._seen[token] = (expires_at, body_digest)
        while len(self._seen) > self._max:
            # Full of unexpired tokens: forget the oldest rather than refuse authentic mail.
            self._seen.popitem(last=False)
        return True

    def _prune(self, now: float) -> None:
        # Insertion order is close to expiry order (timestamps are within the tolerance of
        # now), so pruning from the front is enough; stragglers are bounded by max_entries.
        while self._seen:
            token, (expires_at, _) = next(iter(self._seen.items()))
            if expires_at >= now:
                return
            del self._seen[token]


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise VerificationError("malformed_body", "not JSON") from None
    if not isinstance(payload, dict):
        raise VerificationError("malformed_body", "not a JSON object")
    return payload


def _text(value: object, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isascii():
        raise VerificationError("malformed_body", "signature field")
    return value


def verify_mailgun(
    body: bytes,
    secrets: Sequence[bytes],
    now: float,
    tolerance_s: float = 300,
    tokens: TokenCache | None = None,
) -> Verified:
    """Accept a fresh, authentic, not-replayed Mailgun JSON webhook."""
    require_secrets(tuple(secrets))
    payload = _load(body)
    block = payload.get("signature")
    if not isinstance(block, dict):
        raise VerificationError("malformed_body", "no signature object")
    raw_ts = block.get("timestamp")
    if isinstance(raw_ts, int) and not isinstance(raw_ts, bool):
        raw_ts = str(raw_ts)
    timestamp = _text(raw_ts, 32)
    seconds = parse_unix_seconds(timestamp, reason="malformed_body")
    token = _text(block.get("token"), MAX_TOKEN_CHARS)
    given = [decode_hex(_text(block.get("signature"), 64), 32, reason="malformed_body")]
    if "parent-signature" in block:
        given.append(decode_hex(_text(block["parent-signature"], 64), 32, "malformed_body"))
    check_fresh(seconds, now, tolerance_s)

    signed = (timestamp + token).encode()
    expected = (hmac.new(secret, signed, hashlib.sha256).digest() for secret in secrets)
    if not any_matches(expected, given):
        raise VerificationError("bad_signature")
    if tokens is not None and not tokens.admit(
        token, hashlib.sha256(body).digest(), seconds + tolerance_s, now
    ):
        raise VerificationError("replayed_token")

    event = payload.get("event-data")
    event_id = event.get("id") if isinstance(event, dict) else None
    if isinstance(event_id, str) and 0 < len(event_id) <= MAX_ID_CHARS:
        return Verified(method=METHOD, delivery_id=event_id)
    return Verified(method=METHOD, delivery_id=token)


class MailgunVerifier:
    """``Verifier`` for a Mailgun source; owns the token cache of this process."""

    __slots__ = ("_secrets", "_tokens", "_tolerance_s")

    def __init__(
        self, secrets: Sequence[bytes], tolerance_s: float = 300, max_tokens: int = 100_000
    ) -> None:
        self._secrets = tuple(secrets)
        self._tolerance_s = tolerance_s
        self._tokens = TokenCache(max_tokens)

    def __repr__(self) -> str:  # never show secrets
        return f"MailgunVerifier(secrets=<{len(self._secrets)}>, tokens={len(self._tokens)})"

    async def verify(self, request: WebhookRequest, now: float) -> Verified:
        return verify_mailgun(request.body, self._secrets, now, self._tolerance_s, self._tokens)
