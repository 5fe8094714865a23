"""``create_app``: wires settings, verifiers, publisher and metrics into an aiohttp app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.handlers import WebhookHandler
from ingest.metrics import IngestMetrics
from ingest.openapi import served as openapi_document
from ingest.publisher import KafkaPublisher, Publisher
from ingest.settings import IngestSettings
from ingest.signatures import CertFetcher, Verifier, build_verifier

SETTINGS_KEY = web.AppKey("settings", IngestSettings)
METRICS_KEY = web.AppKey("metrics", IngestMetrics)
PUBLISHER_KEY = web.AppKey("publisher", Publisher)


def create_app(
    settings: IngestSettings,
    *,
    publisher: Publisher | None = None,
    verifiers: Mapping[str, Verifier] | None = None,
    cert_fetcher: CertFetcher | None = None,
) -> web.Application:
    """Build the ingest app; without ``publisher`` it owns a Kafka publisher's lifecycle."""
    metrics = IngestMetrics()
    if verifiers is None:
        verifiers = {
            name: build_verifier(source, cert_fetcher=cert_fetcher)
            for name, source in settings.sources.items()
        }
    kafka = KafkaPublisher(settings.kafka) if publisher is None else None
    active: Publisher = publisher if publisher is not None else kafka  # type: ignore[assignment]
    handler = WebhookHandler(settings, verifiers, active, metrics)

    # aiohttp's own limit is a backstop; the handler answers 413 with a reason first.
    app = web.Application(client_max_size=settings.max_body_bytes + 1)
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = metrics
    app[PUBLISHER_KEY] = active
    app.router.add_post("/webhooks/{source}", handler.by_source)
    app.router.add_route("HEAD", "/webhooks/{source}", handler.probe)
    app.router.add_post("/api/webhooks", handler.generic_inbound)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    document = openapi_document()
    app.router.add_get("/openapi.json", openapi_view(document))
    app.router.add_get("/", index_view(document))

    if kafka is not None:

        async def kafka_lifecycle(_: web.Application) -> AsyncIterator[None]:
            await kafka.start()
            yield
            await kafka.stop()

        app.cleanup_ctx.append(kafka_lifecycle)
    return app


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[PUBLISHER_KEY].ready()
    return web.Response(
        status=200 if ready else 503,
        body=orjson.dumps({"ready": ready}),
        content_type="application/json",
    )


def route_index(document: bytes) -> dict[str, Any]:
    """``GET /``: the routes and their summaries, read from the served OpenAPI document."""
    doc = orjson.loads(document)
    routes = [
        {"method": method.upper(), "path": path, "summary": op.get("summary", "")}
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    ]
    return {
        "service": doc["info"]["title"],
        "routes": routes,
        "docs": {"openapi": "/openapi.json", "readme": "README.md (Set-up, Operations)"},
    }


def index_view(document: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    body = orjson.dumps(route_index(document))

    async def view(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return view


def openapi_view(document: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def view(_: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    return view


async def metrics_view(request: web.Request) -> web.Response:
    registry = request.app[METRICS_KEY].registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
