"""``build_verifier``: one verifier per provider kind, secrets never shown."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from ingest.settings import SourceSettings
from ingest.signatures import WebhookRequest, build_verifier
from schemas.common import PROVIDER_KINDS
from tests.fixtures.signing import sendgrid_keys, ses_signer, sign

NOW = 1_700_000_000.0
SENDGRID = sendgrid_keys()
SECRETS = {
    "nexuspromail": ("nexus-SEKRIT-1", "nexus-SEKRIT-1"),
    "generic": ("generic-SEKRIT-1", "generic-SEKRIT-1"),
    "svix": ("whsec_U0VLUklULXN2aXgtMTIzNDU2", "whsec_U0VLUklULXN2aXgtMTIzNDU2"),
    "resend": ("whsec_U0VLUklULXN2aXgtMTIzNDU2", "whsec_U0VLUklULXN2aXgtMTIzNDU2"),
    "sendgrid": (SENDGRID.public_key, SENDGRID.private_key),
    "mailgun": ("mailgun-SEKRIT-1", "mailgun-SEKRIT-1"),
    "postmark": ("user:SEKRIT-1", "user:SEKRIT-1"),
    "ses": ("SEKRIT-unused", "SEKRIT-unused"),
    "mandrill": ("mandrill-SEKRIT-1", "mandrill-SEKRIT-1"),
}
EXPECTED_METHOD = {
    "nexuspromail": "nexuspromail-hmac-sha256",
    "generic": "generic-hmac-sha256",
    "svix": "standard-webhooks-v1",
    "resend": "standard-webhooks-v1",
    "sendgrid": "sendgrid-ecdsa",
    "mailgun": "mailgun-hmac",
    "postmark": "postmark-basic-auth",
    "ses": "sns-v2",
    "mandrill": "mandrill-hmac-sha1",
}
BODIES = {"mailgun": b'{"event-data": {"id": "e1"}}', "mandrill": b"mandrill_events=%5B%5D"}


def test_every_provider_kind_has_a_verifier() -> None:
    assert set(PROVIDER_KINDS) == set(SECRETS) == set(EXPECTED_METHOD)


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
async def test_each_kind_verifies_its_providers_request_and_hides_secrets(kind: str) -> None:
    configured, signing = SECRETS[kind]
    source = SourceSettings(kind=kind, secrets=(SecretStr(configured),))  # type: ignore[arg-type]
    verifier = build_verifier(source, cert_fetcher=ses_signer().fetch)
    url = "http://127.0.0.1:8080/webhooks/" + kind
    body, headers = sign(kind, BODIES.get(kind, b'{"x": 1}'), signing, now=NOW, url=url)
    request = WebhookRequest(body=body, headers=CIMultiDict(headers), url=url, remote="127.0.0.1")
    verified = await verifier.verify(request, NOW)
    assert verified.method == EXPECTED_METHOD[kind]
    shown = repr(verifier) + repr(verified)
    assert "SEKRIT" not in shown
    assert "U0VLUklU" not in shown
    assert all(k.lower() != "authorization" for k in verified.http_headers)
