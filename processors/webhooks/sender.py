"""One delivery attempt over HTTP: POST the signed body, classify what came back.

No redirect is followed (a 3xx is an answer like a 4xx), at most ``max_response_bytes``
of the answer are read, the connect and total timeouts bound every attempt, the host's
addresses are checked as the connection resolves them (``GuardedResolver``) and an IP
literal before. Nothing here logs a header, a secret or a body.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp

from processors.webhooks.retry import AttemptResult, parse_retry_after
from processors.webhooks.signing import sign
from processors.webhooks.ssrf import AddressNotAllowed, GuardedResolver, UrlGuard, UrlRefused
from schemas.webhooks import DeliveryRecord, WebhookBody

USER_AGENT = "mailpulse-webhooks/1"


def render(record: DeliveryRecord, now: datetime) -> bytes:
    """The body of the next attempt: the stored payload plus ``sent_at`` and ``attempt``."""
    fields = dict(record.payload)
    body = WebhookBody.model_construct(**fields, sent_at=now, attempt=record.attempts + 1)
    return body.model_dump_json().encode()


def headers(record: DeliveryRecord, body: bytes, secret: str, now: datetime) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Id": record.delivery_id,
        "X-Webhook-Timestamp": str(int(now.timestamp())),
        "X-Webhook-Event": record.type,
        "X-Webhook-Attempt": str(record.attempts + 1),
        "X-Webhook-Signature": sign(secret, body),
    }


class Sender:
    """POSTs deliveries through one connection pool (created in the running loop)."""

    def __init__(
        self,
        guard: UrlGuard,
        connect_timeout_s: float,
        timeout_s: float,
        max_response_bytes: int,
    ) -> None:
        self._guard = guard
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._max_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # the scheduler bounds what is in flight, per endpoint
                resolver=GuardedResolver(self._guard.allow_private_addresses),
                ttl_dns_cache=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, record: DeliveryRecord, secret: str) -> AttemptResult:
        now = datetime.now(UTC)
        started = time.monotonic()

        def result(
            status: int | None,
            error: str | None = None,
            retry_after: float | None = None,
            retriable: bool = True,
        ) -> AttemptResult:
            took = int((time.monotonic() - started) * 1000)
            return AttemptResult(status, error, retry_after, took, retriable)

        try:
            self._guard.check_literal(url)
        except UrlRefused as exc:
            return result(None, f"{exc.reason}: {exc.detail}", retriable=False)
        body = render(record, now)
        try:
            async with self._client().post(
                url,
                data=body,
                headers=headers(record, body, secret, now),
                allow_redirects=False,
            ) as resp:
                await resp.content.read(self._max_bytes)  # bounded; the rest is not read
                retry_after = None
                if resp.status in (429, 503):
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"), now)
                return result(resp.status, None, retry_after)
        except TimeoutError:
            return result(None, "timeout")
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, AddressNotAllowed):
                return result(None, f"address_not_allowed: {exc.os_error}", retriable=False)
            return result(None, "dns_error")
        except aiohttp.ClientConnectorError:
            return result(None, "connection_error")
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return result(None, f"connection_error: {type(exc).__name__}")
