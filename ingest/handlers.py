"""HTTP handlers: verify, append durably, answer. No parsing, no state.

Status codes are the contract of DESIGN.md §2: 200 only after acks=all; 401 for anything
that fails verification (nothing appended); 404 unknown source; 413 body over the limit;
503 + Retry-After when the append cannot be made durable in time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
import structlog
from aiohttp import web

from ingest.errors import AppendError, VerificationError
from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher
from ingest.settings import IngestSettings
from ingest.signatures import Verifier, WebhookRequest
from schemas.raw import RawWebhook

log = structlog.get_logger("ingest")

GENERIC_SOURCE = "generic"
# Request headers kept with every raw record (parsing needs to know what the body is).
ALWAYS_KEPT = ("content-type",)


def _json(status: int, payload: Mapping[str, object], **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )


class WebhookHandler:
    """``POST /webhooks/{source}`` and the seed-003 alias ``POST /api/webhooks``."""

    def __init__(
        self,
        settings: IngestSettings,
        verifiers: Mapping[str, Verifier],
        publisher: Publisher,
        metrics: IngestMetrics,
    ) -> None:
        self._settings = settings
        self._verifiers = verifiers
        self._publisher = publisher
        self._metrics = metrics

    async def by_source(self, request: web.Request) -> web.Response:
        return await self._handle(request, request.match_info["source"])

    async def generic_inbound(self, request: web.Request) -> web.Response:
        return await self._handle(request, GENERIC_SOURCE)

    async def probe(self, request: web.Request) -> web.Response:
        """HEAD on a source URL: Mandrill checks a webhook URL this way before using it."""
        known = request.match_info["source"] in self._verifiers
        return web.Response(status=200 if known else 404)

    def _unavailable(self, error: str, detail: str) -> web.Response:
        return _json(
            503,
            {"error": error, "detail": detail},
            **{"Retry-After": str(self._settings.retry_after_s)},
        )

    async def _handle(self, request: web.Request, source: str) -> web.Response:
        response = await self._process(request, source)
        self._metrics.requests.labels(
            source if source in self._verifiers else "_unknown", str(response.status)
        ).inc()
        return response

    async def _process(self, request: web.Request, source: str) -> web.Response:
        verifier = self._verifiers.get(source)
        if verifier is None:
            return _json(404, {"error": "unknown_source", "source": source[:64]})
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _json(413, {"error": "body_too_large", "limit_bytes": limit})
        body = await request.content.read(limit + 1)
        if len(body) > limit:
            return _json(413, {"error": "body_too_large", "limit_bytes": limit})

        received = time.time()
        try:
            verified = await verifier.verify(
                WebhookRequest(
                    body=body, headers=request.headers, url=str(request.url), remote=request.remote
                ),
                received,
            )
        except VerificationError as exc:
            self._metrics.verification_failures.labels(source, exc.reason).inc()
            log.info("verification_failed", source=source, reason=exc.reason)
            if exc.retriable:  # e.g. SNS certificate unreachable: SNS drops 4xx for good
                return self._unavailable("verification_unavailable", exc.reason)
            return _json(401, {"error": "invalid_signature", "reason": exc.reason})

        kept = {h: request.headers[h] for h in ALWAYS_KEPT if h in request.headers}
        kept.update(verified.http_headers)
        record = RawWebhook(
            body=body,
            source=source,
            provider=self._settings.sources[source].kind,
            received_at=datetime.fromtimestamp(received, UTC),
            verification=verified.method,
            delivery_id=verified.delivery_id,
            kind=verified.kind,
            http_headers=kept,
        )
        key = verified.delivery_id or "sha256:" + hashlib.sha256(body).hexdigest()
        try:
            with self._metrics.in_flight.track_inprogress():
                partition, offset = await self._publisher.append(record, f"{source}:{key}".encode())
        except AppendError as exc:
            log.warning("append_failed", source=source, error=str(exc))
            return self._unavailable("not_durable", "the event was not stored; retry later")
        self._metrics.append_latency.labels(source).observe(time.time() - received)
        if verified.kind != "notification":
            self._metrics.control_messages.labels(source, verified.kind).inc()
            log.warning(
                "control_message_needs_operator",
                source=source,
                kind=verified.kind,
                partition=partition,
                offset=offset,
                delivery_id=verified.delivery_id,
            )
        log.debug("appended", source=source, partition=partition, offset=offset)
        if self._settings.sources[source].kind == "generic":
            return _json(200, {"received": True})
        return _json(200, {"status": "accepted", "partition": partition, "offset": offset})
