"""Property: whatever headers and body arrive, ingest answers 401 (503 only when a
verification input is unavailable) and appends nothing that did not verify."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from ingest.app import create_app
from ingest.settings import IngestSettings, SourceSettings
from tests.fixtures.signing import SIGNATURE_HEADERS, new_whsec, sendgrid_keys, ses_signer
from tests.unit.test_ingest_http import FakePublisher

SOURCES = {
    "nexuspromail": SourceSettings(kind="nexuspromail", secrets=(SecretStr("a"),)),
    "generic": SourceSettings(kind="generic", secrets=(SecretStr("a"),)),
    "svix": SourceSettings(kind="svix", secrets=(SecretStr(new_whsec()),)),
    "resend": SourceSettings(kind="resend", secrets=(SecretStr(new_whsec()),)),
    "sendgrid": SourceSettings(kind="sendgrid", secrets=(SecretStr(sendgrid_keys().public_key),)),
    "mailgun": SourceSettings(kind="mailgun", secrets=(SecretStr("a"),)),
    "postmark": SourceSettings(kind="postmark", secrets=(SecretStr("u:p"),)),
    "ses": SourceSettings(kind="ses"),
    "mandrill": SourceSettings(kind="mandrill", secrets=(SecretStr("a"),)),
}
HEADER_NAMES = [*SIGNATURE_HEADERS, "Content-Type"]
# Header values aiohttp's client will send: printable latin-1, no CR/LF.
header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\x7f"), max_size=120
)
bodies = st.one_of(
    st.binary(max_size=600),
    st.just(
        b'{"Type":"Notification","SigningCertURL":"https://sns.us-east-1.amazonaws.com/x.pem"'
        b',"SignatureVersion":"2","Signature":"AAAA","Message":"{}","MessageId":"1",'
        b'"Timestamp":"2026-01-01T00:00:00Z","TopicArn":"arn:x"}'
    ),
    st.just(b'{"signature":{"timestamp":"1","token":"t","signature":"00"},"event-data":{}}'),
    st.just(b"mandrill_events=%5B%5D"),
)


class Harness:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.publisher = FakePublisher()
        app = create_app(
            IngestSettings(sources=SOURCES),
            publisher=self.publisher,
            cert_fetcher=ses_signer().fetch,
        )
        self.client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(app), loop=self.loop
        )
        self.loop.run_until_complete(self.client.start_server())

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        async def go() -> int:
            resp = await self.client.post(path, data=body, headers=headers)
            await resp.read()
            return resp.status

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    source=st.sampled_from(sorted(SOURCES)),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=6),
    body=bodies,
)
def test_garbage_is_rejected_and_never_appended(
    harness: Harness, source: str, headers: dict[str, str], body: bytes
) -> None:
    status = harness.post(f"/webhooks/{source}", body, headers)
    # SES may answer 503: its signing certificate could not be fetched (the fake fetcher
    # knows one URL), and SNS drops a 4xx for good while it retries a 503.
    assert status == 401 or (source == "ses" and status == 503), (source, status)
    assert harness.publisher.appended == []
