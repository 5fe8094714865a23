"""``X-Webhook-Signature``: hex HMAC-SHA256 of the raw body with the endpoint's secret, as
seed 003's receiver computes it (``crypto.createHmac("sha256", secret).update(body)``)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Does ``signature`` sign ``body`` with ``secret``? Constant time."""
    return hmac.compare_digest(sign(secret, body), signature.strip().lower())


def new_secret() -> str:
    """A generated endpoint secret: ``whsec_`` and 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)
