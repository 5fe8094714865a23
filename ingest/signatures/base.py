"""What every verifier sees and returns, and the parsing helpers they share.

A verifier is pure: request + key material + ``now`` in, ``Verified`` out, or
``VerificationError`` (answered 401). Every helper here turns malformed input into a
``VerificationError`` so garbage can never surface as a 500.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingest.errors import VerificationError

# Generous for every scheme we know (SNS signing URLs, several Standard Webhooks signatures).
MAX_HEADER_CHARS = 4096
HEX_CHARS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One incoming webhook request as ingest received it."""

    body: bytes
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    url: str  # absolute URL as the provider called it (Mandrill signs it)
    remote: str | None = None  # client address (Postmark allowlist)


@dataclass(frozen=True, slots=True)
class Verified:
    """A request that passed verification, with what ingest keeps from the check."""

    method: str
    # Provider's delivery/event id, used as the Kafka key; None -> the caller hashes the body.
    delivery_id: str | None = None
    kind: str = "notification"
    # Provider headers worth keeping with the raw record; never credentials.
    http_headers: Mapping[str, str] = field(default_factory=dict)


class Verifier(Protocol):
    async def verify(self, request: WebhookRequest, now: float) -> Verified: ...


# async url -> PEM bytes; only the SES/SNS verifier uses it.
CertFetcher = Callable[[str], Awaitable[bytes]]


def header(headers: Mapping[str, str], name: str, limit: int = MAX_HEADER_CHARS) -> str:
    """A required printable-ASCII header of bounded size, surrounding blanks stripped."""
    value = headers.get(name)
    if value is None:
        # Plain dicts in callers' tests are not case-insensitive; HTTP/2 names are lower case.
        value = headers.get(name.lower())
    if value is None or not isinstance(value, str):
        raise VerificationError("missing_header", name)
    value = value.strip()
    if not value:
        raise VerificationError("missing_header", name)
    if len(value) > limit or not value.isascii() or not value.isprintable():
        raise VerificationError("malformed_header", name)
    return value


def optional_header(headers: Mapping[str, str], name: str) -> str | None:
    """``header`` for headers that may be absent (absent or unusable -> None)."""
    try:
        return header(headers, name)
    except VerificationError:
        return None


def decode_hex(value: str, length: int, reason: str = "malformed_header") -> bytes:
    """Exactly ``length`` bytes written as hex (either case), nothing else."""
    if len(value) != 2 * length or not HEX_CHARS.issuperset(value):
        raise VerificationError(reason, "expected hex digest")
    return bytes.fromhex(value)


def decode_b64(value: str, reason: str = "malformed_header", max_len: int = 4096) -> bytes:
    """Strict standard base64 (padding required, no stray characters)."""
    if len(value) > max_len or not value.isascii():
        raise VerificationError(reason, "expected base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(reason, "expected base64") from None


def parse_unix_seconds(value: str, reason: str = "malformed_header") -> int:
    """A non-negative integer count of seconds, as ASCII digits."""
    if not value.isascii() or not value.isdigit() or len(value) > 15:
        raise VerificationError(reason, "expected unix seconds")
    return int(value)


def check_fresh(timestamp: float, now: float, tolerance_s: float) -> None:
    """Reject a signed timestamp further than ``tolerance_s`` from ``now`` either way."""
    if abs(now - timestamp) > tolerance_s:
        raise VerificationError("stale_timestamp")


def any_matches(expected: Iterable[bytes], given: Iterable[bytes]) -> bool:
    """Constant-time check that some expected digest equals some given one.

    Every pair is compared (no early exit) so timing does not reveal which secret matched.
    """
    givens = list(given)
    matched = False
    for digest in expected:
        for candidate in givens:
            matched |= hmac.compare_digest(digest, candidate)
    return matched


def require_secrets(secrets: tuple[Any, ...]) -> None:
    """A source configured without key material can never verify anything."""
    if not secrets:
        raise VerificationError("no_secret")
