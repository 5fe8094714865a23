"""Which endpoint URLs may be called (SSRF): checked at registration and at every attempt.

A URL must be ``https`` (``http`` only when ``allow_http``), name a host and carry no
credentials. Unless ``allow_private_addresses``, every address its host resolves to must
be a public one: loopback, private, link-local (where cloud metadata services live),
carrier-grade NAT, multicast, reserved and unspecified addresses are refused, and so are
IPv4 addresses hidden in IPv6 ones (mapped, 6to4, NAT64). At delivery time the check runs
on the addresses the connection actually uses (``GuardedResolver``), so a name that
resolved to a public address at registration and to a private one later (DNS rebinding)
is refused then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from processors.errors import ProcessorError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
RefusalReason = Literal[
    "invalid_url",
    "scheme_not_allowed",
    "credentials_in_url",
    "host_missing",
    "unresolvable",
    "address_not_allowed",
]
# Cloud metadata services (AWS, GCP, Azure, Oracle: 169.254.169.254 and 192.0.0.192;
# ECS task metadata; Alibaba; AWS over IPv6). Most are link-local or shared anyway: named
# so the refusal says what it is.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UrlRefused(ProcessorError):
    """An endpoint URL that may not be called; ``detail`` names the host, never a secret."""

    retriable = False

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RefusalReason = reason
        self.detail = detail


class AddressNotAllowed(OSError):
    """Raised by ``GuardedResolver``: aiohttp reports it as a connection error whose
    ``os_error`` is this, which the sender tells apart from a network failure."""


def address_refusal(ip: IP) -> str | None:
    """What kind of non-public address ``ip`` is, or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_refusal(embedded)
    checks = (
        (ip in METADATA, "metadata"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "shared (CGNAT)"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "non-global"),
    )
    return next((name for refused, name in checks if refused), None)


def parse_ip(host: str) -> IP | None:
    """``host`` as an IP address (brackets of an IPv6 literal removed), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url_shape(url: str, allow_http: bool) -> URL:
    """``url`` parsed, or ``UrlRefused`` for a scheme, host or userinfo that is not allowed."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise UrlRefused("invalid_url", "not a URL") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in schemes:
        allowed = " or ".join(schemes)
        raise UrlRefused("scheme_not_allowed", f"the URL must be {allowed}, not {parsed.scheme!r}")
    if parsed.user is not None or parsed.password is not None:
        raise UrlRefused("credentials_in_url", "credentials in the URL are not accepted")
    if not parsed.raw_host:
        raise UrlRefused("host_missing", "the URL names no host")
    return parsed


def refuse_addresses(host: str, addresses: Iterable[IP]) -> None:
    """``UrlRefused`` if any of ``host``'s addresses is not public."""
    for ip in addresses:
        kind = address_refusal(ip)
        if kind is not None:
            raise UrlRefused(
                "address_not_allowed", f"{host} is or resolves to a {kind} address ({ip})"
            )


Resolve = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``getaddrinfo``, as a connection would)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class UrlGuard:
    """The registration-time check: shape, then every resolved address."""

    allow_http: bool
    allow_private_addresses: bool
    resolve: Resolve = system_resolve
    resolve_timeout_s: float = 5.0

    async def check(self, url: str) -> URL:
        parsed = check_url_shape(url, self.allow_http)
        host = parsed.raw_host or ""
        literal = parse_ip(host)
        if literal is not None:
            addresses: list[IP] = [literal]
        else:
            try:
                async with asyncio.timeout(self.resolve_timeout_s):
                    found = await self.resolve(host, parsed.port or 443)
            except (OSError, TimeoutError) as exc:
                raise UrlRefused("unresolvable", f"{host} does not resolve") from exc
            addresses = [ip for ip in map(parse_ip, found) if ip is not None]
            if not addresses:
                raise UrlRefused("unresolvable", f"{host} does not resolve")
        if not self.allow_private_addresses:
            refuse_addresses(host, addresses)
        return parsed

    def check_literal(self, url: str) -> URL:
        """The delivery-time check of what the resolver does not see: shape and an IP
        literal host (aiohttp connects to those without resolving)."""
        parsed = check_url_shape(url, self.allow_http)
        literal = parse_ip(parsed.raw_host or "")
        if literal is not None and not self.allow_private_addresses:
            refuse_addresses(parsed.raw_host or "", [literal])
        return parsed


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a host when any of its addresses is not public."""

    def __init__(self, allow_private_addresses: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private_addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                ip = parse_ip(result["host"])
                kind = address_refusal(ip) if ip is not None else "unparsable"
                if kind is not None:
                    raise AddressNotAllowed(f"{host} resolves to a {kind} address ({ip})")
        return results

    async def close(self) -> None:
        await self._inner.close()
