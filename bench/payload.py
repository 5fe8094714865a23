"""Signed NexusProMail webhook events as a provider sends them (~400 bytes each)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import orjson

# A bench-only secret; the servers are configured with the same one.
SECRET = "bench-fake-nexuspromail-secret"
SIGNATURE_HEADER = "X-NexusProMail-Signature"
# Only the types the seed-001 Flask handler writes to its database, so every reference
# request pays its commit (the brief's "inline work").
TYPES = ("bounced.hard", "complained", "unsubscribed")
BOUNCE_REASON = "5.1.1 The email account that you tried to reach does not exist"


def sign(body: bytes, secret: str = SECRET) -> str:
    """NexusProMail's scheme: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_body(i: int) -> bytes:
    """The i-th event, shaped like seed 002's payload, with the metadata real sends carry."""
    second = i % 60
    event = {
        "id": f"evt_01hx{i:016d}",
        "type": TYPES[i % len(TYPES)],
        "created_at": f"2026-05-13T10:24:{second:02d}Z",
        "data": {
            "message_id": f"msg_01hx{i * 7919 % 10**12:016d}",
            "email": f"recipient{i:06d}@customer-{i % 97:02d}.example.com",
            "timestamp": f"2026-05-13T10:24:{second:02d}Z",
            "bounce_code": "550",
            "bounce_reason": BOUNCE_REASON,
            "tags": ["transactional", "password-reset"],
            "metadata": {"account_id": f"acct_{i % 1000:04d}"},
        },
    }
    return orjson.dumps(event)


def write_events(path: Path, count: int = 1000) -> int:
    """Write the load generator's event file; returns the mean body size in bytes."""
    events = []
    total = 0
    for i in range(count):
        body = event_body(i)
        total += len(body)
        events.append(
            {
                "body": body.decode(),
                "headers": {SIGNATURE_HEADER: sign(body), "Content-Type": "application/json"},
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(events))
    return total // count
