"""Signing certificates for SNS: the URL check, the default fetcher and a bounded cache.

Only URLs that pass ``check_certificate_url`` are ever fetched, so a forged message cannot
make ingest call an arbitrary host. The default fetcher uses TLS with certificate
verification and no redirects; tests inject a fake ``CertFetcher`` instead.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from urllib.parse import SplitResult, urlsplit

import aiohttp
from cryptography import x509

from ingest.errors import VerificationError, VerificationUnavailable
from ingest.signatures.base import CertFetcher

SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
MAX_PEM_BYTES = 64 * 1024
FETCH_TIMEOUT_S = 10.0


def check_sns_url(url: str, reason: str = "bad_certificate_url") -> SplitResult:
    """``reason`` unless ``url`` is https on an SNS host (``sns.<region>.amazonaws.com``
    or ``.com.cn``, port 443, no credentials): the host check of every URL that an SNS
    message names and we visit (its certificate here, a ``SubscribeURL`` in
    ``mailpulse sns confirm``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise VerificationError(reason) from None
    if (
        parts.scheme != "https"
        or parts.hostname is None
        or not SNS_HOST.fullmatch(parts.hostname)
        or parts.username is not None
        or parts.password is not None
        or port not in (None, 443)
    ):
        raise VerificationError(reason)
    return parts


def check_certificate_url(url: str) -> None:
    """``bad_certificate_url`` unless ``url`` is https://sns.<region>.amazonaws.com[.cn]/….pem."""
    if not check_sns_url(url).path.endswith(".pem"):
        raise VerificationError("bad_certificate_url")


async def fetch_certificate_pem(url: str) -> bytes:
    """Download a PEM certificate (HTTPS, no redirects, bounded size and time)."""
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, allow_redirects=False) as response,
    ):
        if response.status != 200:
            raise VerificationUnavailable("certificate_error", f"HTTP {response.status}")
        pem = await response.content.read(MAX_PEM_BYTES + 1)
    if len(pem) > MAX_PEM_BYTES:
        raise VerificationError("certificate_error", "certificate too large")
    return pem


class CertificateCache:
    """Parsed certificates by URL: bounded LRU, one fetch in flight per URL.

    A fetch that fails is not cached, so the next message tries again; the failure is a
    ``VerificationUnavailable`` (retriable) because the message may well be authentic.
    """

    __slots__ = ("_certs", "_fetch", "_max", "_pending")

    def __init__(self, fetch: CertFetcher, max_entries: int = 32) -> None:
        self._fetch = fetch
        self._max = max_entries
        self._certs: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._pending: dict[str, asyncio.Future[x509.Certificate]] = {}

    def __len__(self) -> int:
        return len(self._certs)

    async def get(self, url: str) -> x509.Certificate:
        """The certificate at ``url`` (checked with ``check_certificate_url`` first)."""
        check_certificate_url(url)
        cert = self._certs.get(url)
        if cert is not None:
            self._certs.move_to_end(url)
            return cert
        future = self._pending.get(url)
        if future is None:
            future = asyncio.ensure_future(self._load(url))
            self._pending[url] = future
            future.add_done_callback(lambda done: self._settled(url, done))
        # Shielded: one cancelled request must not cancel the fetch others are waiting on.
        return await asyncio.shield(future)

    def _settled(self, url: str, future: asyncio.Future[x509.Certificate]) -> None:
        self._pending.pop(url, None)
        if not future.cancelled() and future.exception() is None:
            self._certs[url] = future.result()
            while len(self._certs) > self._max:
                self._certs.popitem(last=False)

    async def _load(self, url: str) -> x509.Certificate:
        try:
            pem = await self._fetch(url)
        except VerificationError:
            raise
        except Exception as exc:  # any transport failure: retriable, never a 500
            raise VerificationUnavailable("certificate_error", type(exc).__name__) from None
        if not isinstance(pem, bytes):
            raise VerificationError("certificate_error", "fetcher returned no bytes")
        try:
            return x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise VerificationError("certificate_error", "not a PEM certificate") from None
