"""The ingest HTTP contract with a fake publisher: status codes, bodies, what is appended."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from ingest.app import create_app
from ingest.errors import AppendError, OverloadedError
from ingest.settings import IngestSettings, SourceSettings
from schemas.raw import RawWebhook

SECRET = "unit-secret"
Client = TestClient[web.Request, web.Application]


class FakePublisher:
    """Records appends; can be told to fail or to hold appends until released."""

    def __init__(self) -> None:
        self.appended: list[tuple[RawWebhook, bytes]] = []
        self.fail: AppendError | None = None
        self.gate: asyncio.Event | None = None

    async def append(self, record: RawWebhook, key: bytes) -> tuple[int, int]:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.appended.append((record, key))
        return 0, len(self.appended) - 1

    def ready(self) -> bool:
        return self.fail is None


def _settings(**overrides: object) -> IngestSettings:
    sources = {
        "nexuspromail": SourceSettings(kind="nexuspromail", secrets=(SecretStr(SECRET),)),
        "generic": SourceSettings(kind="generic", secrets=(SecretStr(SECRET),)),
    }
    return IngestSettings(sources=sources, **overrides)  # type: ignore[arg-type]


def _sig(body: bytes) -> str:
    return hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
async def client(publisher: FakePublisher) -> AsyncIterator[Client]:
    app = create_app(_settings(max_body_bytes=1000, retry_after_s=7), publisher=publisher)
    async with TestClient(TestServer(app)) as c:
        yield c


BODY = b'{"id":"evt_1","type":"delivered","data":{"email":"a@example.com"}}'


async def test_signed_request_is_appended_byte_for_byte(
    client: Client, publisher: FakePublisher
) -> None:
    resp = await client.post(
        "/webhooks/nexuspromail",
        data=BODY,
        headers={"X-NexusProMail-Signature": _sig(BODY), "Content-Type": "application/json"},
    )
    assert resp.status == 200
    assert (await resp.json())["status"] == "accepted"
    [(record, key)] = publisher.appended
    assert record.body == BODY
    assert record.source == "nexuspromail"
    assert record.provider == "nexuspromail"
    assert record.http_headers["content-type"] == "application/json"
    assert key == b"nexuspromail:sha256:" + hashlib.sha256(BODY).hexdigest().encode()


async def test_bad_signature_is_401_and_appends_nothing(
    client: Client, publisher: FakePublisher
) -> None:
    flipped = BODY.replace(b"delivered", b"delivereD")
    resp = await client.post(
        "/webhooks/nexuspromail", data=flipped, headers={"X-NexusProMail-Signature": _sig(BODY)}
    )
    assert resp.status == 401
    assert (await resp.json())["error"] == "invalid_signature"
    resp = await client.post(
        "/webhooks/nexuspromail", data=BODY, headers={"X-NexusProMail-Signature": "\u00ff not hex"}
    )
    assert resp.status == 401
    assert publisher.appended == []


async def test_generic_inbound_path_answers_received(
    client: Client, publisher: FakePublisher
) -> None:
    resp = await client.post(
        "/api/webhooks", data=BODY, headers={"X-Webhook-Signature": _sig(BODY)}
    )
    assert resp.status == 200
    assert await resp.json() == {"received": True}
    assert publisher.appended[0][0].source == "generic"


async def test_unknown_source_wrong_method_and_oversize(
    client: Client, publisher: FakePublisher
) -> None:
    assert (await client.post("/webhooks/nope", data=BODY)).status == 404
    assert (await client.get("/webhooks/nexuspromail")).status == 405
    big = b"x" * 1001
    resp = await client.post(
        "/webhooks/nexuspromail", data=big, headers={"X-NexusProMail-Signature": _sig(big)}
    )
    assert resp.status == 413
    assert (await resp.json())["error"] == "body_too_large"
    assert publisher.appended == []


@pytest.mark.parametrize("failure", [AppendError("timeout"), OverloadedError("full")])
async def test_broker_failure_is_503_with_retry_after(
    client: Client, publisher: FakePublisher, failure: AppendError
) -> None:
    publisher.fail = failure
    resp = await client.post(
        "/webhooks/nexuspromail", data=BODY, headers={"X-NexusProMail-Signature": _sig(BODY)}
    )
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "7"
    assert (await client.get("/readyz")).status == 503


async def test_answer_waits_for_the_append(client: Client, publisher: FakePublisher) -> None:
    publisher.gate = asyncio.Event()
    request = asyncio.ensure_future(
        client.post(
            "/webhooks/nexuspromail", data=BODY, headers={"X-NexusProMail-Signature": _sig(BODY)}
        )
    )
    await asyncio.sleep(0.1)
    assert not request.done()  # no answer while the broker has not acknowledged
    publisher.gate.set()
    assert (await request).status == 200


async def test_health_ready_and_metrics(client: Client, publisher: FakePublisher) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    await client.post(
        "/webhooks/nexuspromail", data=BODY, headers={"X-NexusProMail-Signature": "00"}
    )
    text = await (await client.get("/metrics")).text()
    assert 'mailpulse_ingest_requests_total{source="nexuspromail",status="401"} 1.0' in text
    assert "mailpulse_ingest_verification_failures_total" in text
    assert "mailpulse_ingest_in_flight" in text
