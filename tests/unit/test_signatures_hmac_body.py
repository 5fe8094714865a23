"""NexusProMail and generic-platform verifiers: hex HMAC-SHA256 of the raw body."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from ingest.errors import VerificationError
from ingest.settings import SourceSettings
from ingest.signatures import Verifier, WebhookRequest, build_verifier
from tests.fixtures.signing import sign

NOW = 1_700_000_000.0
NEXUS_BODY = b'{"id":"evt_1","type":"delivered","data":{"email":"a@example.com"}}'
# openssl dgst -sha256 -hmac nexus-test-secret (computed outside Python, see the test).
NEXUS_SIG = "bc5c8eeeabffadf9f29e546e99aced1692b081a4c8b88ab840935d12256cd639"
GENERIC_BODY = (
    b'{"type":"email.delivered","email_id":"e1","recipient":"a@example.com",'
    b'"timestamp":"2026-03-03T10:00:00Z"}'
)
# openssl dgst -sha256 -hmac whsec_your_secret_key_here: seed 003 uses the secret as is.
GENERIC_SIG = "a6ac53c63fb05756b3cbc790cdb8ac3910ddddf4ba5e2f7d5365e33afe4fc610"


def verifier(kind: str, *secrets: str) -> Verifier:
    return build_verifier(SourceSettings(kind=kind, secrets=tuple(SecretStr(s) for s in secrets)))  # type: ignore[arg-type]


def request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest(body=body, headers=CIMultiDict(headers), url="http://x/webhooks/n")


async def reason(v: Verifier, body: bytes, headers: dict[str, str]) -> str:
    with pytest.raises(VerificationError) as info:
        await v.verify(request(body, headers), NOW)
    return info.value.reason


async def test_nexuspromail_known_vector_is_accepted() -> None:
    v = verifier("nexuspromail", "nexus-test-secret")
    verified = await v.verify(request(NEXUS_BODY, {"X-NexusProMail-Signature": NEXUS_SIG}), NOW)
    assert verified.method == "nexuspromail-hmac-sha256"
    # The body is not parsed: the caller keys the record by a body hash.
    assert verified.delivery_id is None
    assert verified.kind == "notification"
    assert "authorization" not in {k.lower() for k in verified.http_headers}


async def test_generic_known_vector_is_accepted_under_its_own_header_only() -> None:
    v = verifier("generic", "whsec_your_secret_key_here")
    verified = await v.verify(request(GENERIC_BODY, {"X-Webhook-Signature": GENERIC_SIG}), NOW)
    assert verified.method == "generic-hmac-sha256"
    assert await reason(v, GENERIC_BODY, {"X-NexusProMail-Signature": GENERIC_SIG}) == (
        "missing_header"
    )


async def test_header_name_and_hex_case_do_not_matter() -> None:
    v = verifier("nexuspromail", "nexus-test-secret")
    headers = {"x-nexuspromail-signature": NEXUS_SIG.upper()}
    assert (await v.verify(request(NEXUS_BODY, headers), NOW)).method


@pytest.mark.parametrize("position", [0, len(NEXUS_BODY) // 2, len(NEXUS_BODY) - 1])
async def test_one_flipped_body_byte_is_bad_signature(position: int) -> None:
    v = verifier("nexuspromail", "nexus-test-secret")
    body = bytearray(NEXUS_BODY)
    body[position] ^= 0x01
    assert await reason(v, bytes(body), {"X-NexusProMail-Signature": NEXUS_SIG}) == "bad_signature"


@pytest.mark.parametrize("kind", ["nexuspromail", "generic"])
async def test_every_rotated_secret_is_accepted_and_others_are_not(kind: str) -> None:
    v = verifier(kind, "old-secret", "new-secret")
    for secret in ("old-secret", "new-secret"):
        body, headers = sign(kind, NEXUS_BODY, secret, now=NOW)
        assert (await v.verify(request(body, headers), NOW)).method.startswith(kind)
    body, headers = sign(kind, NEXUS_BODY, "someone-else", now=NOW)
    assert await reason(v, body, headers) == "bad_signature"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "missing_header"),
        ("   ", "missing_header"),
        ("sha256=" + NEXUS_SIG, "malformed_header"),
        (NEXUS_SIG[:-1], "malformed_header"),
        (NEXUS_SIG + "0", "malformed_header"),
        ("zz" + NEXUS_SIG[2:], "malformed_header"),
        (NEXUS_SIG[:30] + " " + NEXUS_SIG[31:], "malformed_header"),
        ("\u00ff" * 64, "malformed_header"),
        ("\udcff" * 64, "malformed_header"),
        ("a" * 100_000, "malformed_header"),
        ("0" * 64, "bad_signature"),
    ],
)
async def test_garbage_signature_headers_are_verification_errors(value: str, expected: str) -> None:
    v = verifier("nexuspromail", "nexus-test-secret")
    assert await reason(v, NEXUS_BODY, {"X-NexusProMail-Signature": value}) == expected


async def test_missing_header_and_missing_secret() -> None:
    assert await reason(verifier("nexuspromail", "s"), NEXUS_BODY, {}) == "missing_header"
    assert await reason(
        verifier("generic"), GENERIC_BODY, {"X-Webhook-Signature": GENERIC_SIG}
    ) == ("no_secret")


def test_repr_never_shows_a_secret() -> None:
    assert "nexus-test-secret" not in repr(verifier("nexuspromail", "nexus-test-secret"))
