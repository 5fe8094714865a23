"""Postmark: no signature. The webhook URL carries HTTP basic auth credentials, optionally
with an allowlist of Postmark's client addresses.

Secrets are ``user:password``. Postmark gives up on an event answered with any 4xx other
than 408/429, so a credential mistake here loses events for good: the allowlist reads the
address the connection came from, which behind a proxy is the proxy's (leave it empty
there). Postmark has no event id; the caller keys the record by a body hash.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Mapping, Sequence

from ingest.errors import ConfigError, VerificationError
from ingest.signatures.base import Verified, WebhookRequest, header, require_secrets

METHOD = "postmark-basic-auth"
AUTHORIZATION = "Authorization"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_credentials(secret: str) -> bytes:
    """``user:password`` as the bytes a client base64-encodes; ConfigError if malformed."""
    user, sep, _ = secret.partition(":")
    if not sep or not user:
        raise ConfigError("a Postmark secret must be user:password")
    return secret.encode()


def parse_networks(allowed: Sequence[str]) -> tuple[Network, ...]:
    """The allowlist as networks (a bare address is a /32 or /128)."""
    try:
        return tuple(ipaddress.ip_network(a.strip(), strict=False) for a in allowed)
    except ValueError as exc:
        raise ConfigError(f"postmark allowed_ips: {exc}") from None


def _client_allowed(remote: str | None, networks: Sequence[Network]) -> bool:
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def verify_postmark(
    headers: Mapping[str, str],
    credentials: Sequence[bytes],
    remote: str | None = None,
    networks: Sequence[Network] = (),
) -> Verified:
    """Accept when the client is allowed (if a list is set) and basic auth matches any secret."""
    require_secrets(tuple(credentials))
    if networks and not _client_allowed(remote, networks):
        raise VerificationError("ip_not_allowed")
    scheme, _, encoded = header(headers, AUTHORIZATION, limit=1024).partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise VerificationError("malformed_header", AUTHORIZATION)
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("malformed_header", AUTHORIZATION) from None
    matched = False
    for expected in credentials:  # no early exit: timing must not tell which one matched
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise VerificationError("bad_signature")
    # Nothing from the request headers is kept: the only one that matters is the credential.
    return Verified(method=METHOD)


class PostmarkVerifier:
    """``Verifier`` for a Postmark source."""

    __slots__ = ("_credentials", "_networks")

    def __init__(self, secrets: Sequence[str], allowed_ips: Sequence[str] = ()) -> None:
        self._credentials = tuple(parse_credentials(s) for s in secrets)
        self._networks = parse_networks(allowed_ips)

    def __repr__(self) -> str:  # never show secrets
        return (
            f"PostmarkVerifier(secrets=<{len(self._credentials)}>, "
            f"allowed_networks={len(self._networks)})"
        )

    async def verify(self, request: WebhookRequest, now: float) -> Verified:
        return verify_postmark(request.headers, self._credentials, request.remote, self._networks)
