"""Amazon SES via SNS: message signature with a self-signed certificate and a fake fetcher."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict
from pydantic import SecretStr

from ingest.errors import VerificationError, VerificationUnavailable
from ingest.settings import SourceSettings
from ingest.signatures import CertFetcher, Verifier, WebhookRequest, build_verifier
from ingest.signatures.certs import fetch_certificate_pem
from tests.fixtures.signing import SesSigner, ses_signer

NOW = 1_700_000_000.0
SES_EVENT = json.dumps(
    {"eventType": "Bounce", "bounce": {"bounceType": "Permanent"}, "mail": {"messageId": "m1"}}
)


def verifier(fetch: CertFetcher, topic_arns: tuple[str, ...] = ()) -> Verifier:
    source = SourceSettings(kind="ses", secrets=(SecretStr("unused"),), topic_arns=topic_arns)
    return build_verifier(source, cert_fetcher=fetch)


def request(body: bytes, headers: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest(body=body, headers=CIMultiDict(headers or {}), url="http://x/ses")


async def reason(v: Verifier, body: bytes, now: float = NOW) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        await v.verify(request(body), now)
    return info.value


@pytest.fixture
def signer() -> SesSigner:
    return ses_signer()


async def test_string_to_sign_written_out_by_hand_is_accepted(signer: SesSigner) -> None:
    # The canonical form from the AWS docs, spelled out literally rather than generated.
    message = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
        "Subject": "My First Message",
        "Message": "Hello world!",
        "Timestamp": "2012-05-02T00:54:06.655Z",
        "SignatureVersion": "1",
        "SigningCertURL": signer.cert_url,
        "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe",
    }
    string_to_sign = (
        "Message\nHello world!\n"
        "MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
        "Subject\nMy First Message\n"
        "Timestamp\n2012-05-02T00:54:06.655Z\n"
        "TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
        "Type\nNotification\n"
    )
    signature = signer.key.sign(string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    message["Signature"] = base64.b64encode(signature).decode()
    headers = {"x-amz-sns-message-type": "Notification", "x-amz-sns-topic-arn": message["TopicArn"]}
    verified = await verifier(signer.fetch).verify(
        request(json.dumps(message).encode(), headers), NOW
    )
    assert verified.method == "sns-v1"
    assert verified.delivery_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
    assert verified.kind == "notification"
    assert dict(verified.http_headers) == headers


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize(
    ("msg_type", "kind"),
    [
        ("Notification", "notification"),
        ("SubscriptionConfirmation", "subscription_confirmation"),
        ("UnsubscribeConfirmation", "unsubscribe_confirmation"),
    ],
)
async def test_every_type_and_version_verifies(
    signer: SesSigner, version: str, msg_type: str, kind: str
) -> None:
    body, headers = signer.envelope(
        SES_EVENT, now=NOW, msg_type=msg_type, version=version, message_id="mid-1"
    )
    verified = await verifier(signer.fetch).verify(request(body, headers), NOW)
    assert (verified.method, verified.kind, verified.delivery_id) == (
        f"sns-v{version}",
        kind,
        "mid-1",
    )
    assert verified.http_headers["x-amz-sns-message-type"] == msg_type


async def test_subject_is_signed_when_present(signer: SesSigner) -> None:
    body, _ = signer.envelope(SES_EVENT, now=NOW, subject="Amazon SES Email Event Notification")
    v = verifier(signer.fetch)
    assert (await v.verify(request(body), NOW)).method == "sns-v2"
    tampered = json.loads(body)
    tampered["Subject"] = "changed"
    assert (await reason(v, json.dumps(tampered).encode())).reason == "bad_signature"


async def test_one_flipped_message_byte_is_bad_signature(signer: SesSigner) -> None:
    body, _ = signer.envelope(SES_EVENT, now=NOW)
    flipped = body.replace(b"Permanent", b"Permanenu")
    assert flipped != body
    assert (await reason(verifier(signer.fetch), flipped)).reason == "bad_signature"


async def test_certificate_is_fetched_once_per_url_and_cached(signer: SesSigner) -> None:
    fresh = SesSigner()
    v = verifier(fresh.fetch)
    bodies = [fresh.envelope(SES_EVENT, now=NOW)[0] for _ in range(3)]
    results = await asyncio.gather(*(v.verify(request(b), NOW) for b in bodies))
    assert all(r.method == "sns-v2" for r in results)
    await v.verify(request(fresh.envelope(SES_EVENT, now=NOW)[0]), NOW)
    assert fresh.fetches == [fresh.cert_url]


async def test_a_second_signing_certificate_also_works() -> None:
    # AWS rotates certificates under new URLs; each is fetched once.
    first, second = SesSigner(), SesSigner()

    async def fetch(url: str) -> bytes:
        return await (first if url == first.cert_url else second).fetch(url)

    v = verifier(fetch)
    for s in (first, second, first):
        assert (await v.verify(request(s.envelope(SES_EVENT, now=NOW)[0]), NOW)).method


def _with(body: bytes, **changes: Any) -> bytes:
    message = json.loads(body)
    for key, value in changes.items():
        if value is None:
            message.pop(key, None)
        else:
            message[key] = value
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://sns.us-east-1.amazonaws.com:99999/x.pem",
        "https://sns..amazonaws.com/x.pem",
        "https://sqs.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.txt",
        "file:///etc/passwd",
        "https://[::1/x.pem",
        "",
    ],
)
async def test_certificate_url_not_on_sns_is_refused_without_fetching(url: str) -> None:
    fetched: list[str] = []

    async def fetch(u: str) -> bytes:
        fetched.append(u)
        return b""

    body, _ = ses_signer().envelope(SES_EVENT, now=NOW)
    error = await reason(verifier(fetch), _with(body, SigningCertURL=url))
    assert error.reason == "bad_certificate_url"
    assert fetched == []


async def test_china_region_certificate_url_is_allowed() -> None:
    signer = SesSigner(region="cn-north-1")
    signer.cert_url = signer.cert_url.replace("amazonaws.com/", "amazonaws.com.cn/")
    body, _ = signer.envelope(SES_EVENT, now=NOW)
    assert (await verifier(signer.fetch).verify(request(body), NOW)).method == "sns-v2"


async def test_topic_allowlist(signer: SesSigner) -> None:
    v = verifier(signer.fetch, topic_arns=(signer.topic_arn,))
    body, _ = signer.envelope(SES_EVENT, now=NOW)
    assert (await v.verify(request(body), NOW)).method
    other, _ = signer.envelope(SES_EVENT, now=NOW, topic_arn="arn:aws:sns:us-east-1:1:other")
    assert (await reason(v, other)).reason == "topic_not_allowed"


async def test_fetch_failure_is_retriable_and_not_cached(signer: SesSigner) -> None:
    calls = 0

    async def flaky(url: str) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("boom")
        return await signer.fetch(url)

    v = verifier(flaky)
    body, _ = signer.envelope(SES_EVENT, now=NOW)
    error = await reason(v, body)
    assert (error.reason, error.retriable) == ("certificate_error", True)
    assert (await v.verify(request(body), NOW)).method == "sns-v2"


@pytest.mark.parametrize("pem", [b"", b"junk", b"-----BEGIN CERTIFICATE-----\nAAAA\n"])
async def test_garbage_certificate_is_certificate_error(signer: SesSigner, pem: bytes) -> None:
    async def fetch(url: str) -> bytes:
        return pem

    body, _ = signer.envelope(SES_EVENT, now=NOW)
    error = await reason(verifier(fetch), body)
    assert (error.reason, error.retriable) == ("certificate_error", False)


async def test_certificate_outside_its_validity_is_rejected() -> None:
    expired = SesSigner(not_after=datetime(2020, 1, 1, tzinfo=UTC))
    body, _ = expired.envelope(SES_EVENT, now=NOW)
    assert (await reason(verifier(expired.fetch), body)).reason == "certificate_error"


async def test_non_rsa_certificate_is_rejected(signer: SesSigner) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )

    async def fetch(url: str) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    body, _ = signer.envelope(SES_EVENT, now=NOW)
    assert (await reason(verifier(fetch), body)).reason == "certificate_error"


@pytest.mark.parametrize(
    "changes",
    [
        {"Type": "Something"},
        {"Type": None},
        {"MessageId": None},
        {"MessageId": 5},
        {"MessageId": ""},
        {"Message": {"nested": "object"}},
        {"Timestamp": None},
        {"Subject": 12},
        {"SignatureVersion": "3"},
        {"SignatureVersion": 2},
        {"Signature": "not base64!"},
        {"Signature": None},
        {"SigningCertURL": None},
        {"Message": "\ud800"},
    ],
)
async def test_garbage_envelopes_are_malformed_body(
    signer: SesSigner, changes: dict[str, Any]
) -> None:
    body, _ = signer.envelope(SES_EVENT, now=NOW)
    assert (await reason(verifier(signer.fetch), _with(body, **changes))).reason == (
        "malformed_body"
    )


@pytest.mark.parametrize("body", [b"", b"nope", b"[]", b"\xff", b"[" * 50_000])
async def test_non_json_bodies_are_malformed_body(signer: SesSigner, body: bytes) -> None:
    assert (await reason(verifier(signer.fetch), body)).reason == "malformed_body"


async def test_confirmation_needs_its_token_and_subscribe_url(signer: SesSigner) -> None:
    body, _ = signer.envelope(SES_EVENT, now=NOW, msg_type="SubscriptionConfirmation")
    error = await reason(verifier(signer.fetch), _with(body, Token=None))
    assert error.reason == "malformed_body"


async def test_default_fetcher_reads_pem_and_neither_follows_redirects_nor_accepts_errors(
    signer: SesSigner,
) -> None:
    # Served on 127.0.0.1: the fetcher itself does not check hosts (the cache does first).
    async def pem(_: web.Request) -> web.Response:
        return web.Response(body=signer.cert_pem)

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/cert.pem")

    app = web.Application()
    app.router.add_get("/cert.pem", pem)
    app.router.add_get("/moved.pem", moved)
    async with TestServer(app, host="127.0.0.1") as server:
        assert await fetch_certificate_pem(str(server.make_url("/cert.pem"))) == signer.cert_pem
        for path in ("/moved.pem", "/missing.pem"):
            with pytest.raises(VerificationUnavailable) as info:
                await fetch_certificate_pem(str(server.make_url(path)))
            assert info.value.reason == "certificate_error"
