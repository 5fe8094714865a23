"""Standard Webhooks (Svix, Resend): spec vector, the library's signer, rotation, tolerance."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr
from standardwebhooks import Webhook

from ingest.errors import ConfigError, VerificationError
from ingest.settings import SourceSettings
from ingest.signatures import Verifier, WebhookRequest, build_verifier
from tests.fixtures.signing import new_whsec, sign, standard_webhooks_headers

# The specification's published test vector (also in every standardwebhooks library's tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
BODY = b'{"type":"email.bounced","data":{"email_id":"e1","to":["a@example.com"]}}'
NOW = 1_700_000_000.0


def verifier(*secrets: str, kind: str = "svix", tolerance_s: int = 300) -> Verifier:
    source = SourceSettings(
        kind=kind,  # type: ignore[arg-type]
        secrets=tuple(SecretStr(s) for s in secrets),
        tolerance_s=tolerance_s,
    )
    return build_verifier(source)


def spec_headers(prefix: str = "webhook-", **changes: str) -> dict[str, str]:
    headers = {
        prefix + "id": SPEC_ID,
        prefix + "timestamp": str(SPEC_TS),
        prefix + "signature": SPEC_SIG,
    }
    headers.update({prefix + k: v for k, v in changes.items()})
    return headers


def request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest(body=body, headers=CIMultiDict(headers), url="http://x/webhooks/svix")


async def reason(v: Verifier, body: bytes, headers: dict[str, str], now: float) -> str:
    with pytest.raises(VerificationError) as info:
        await v.verify(request(body, headers), now)
    return info.value.reason


@pytest.mark.parametrize("prefix", ["webhook-", "svix-", "Webhook-", "SVIX-"])
async def test_spec_vector_is_accepted_with_either_header_family(prefix: str) -> None:
    verified = await verifier(SPEC_SECRET).verify(request(SPEC_BODY, spec_headers(prefix)), SPEC_TS)
    assert verified.method == "standard-webhooks-v1"
    assert verified.delivery_id == SPEC_ID
    assert dict(verified.http_headers) == {
        prefix.lower() + "id": SPEC_ID,
        prefix.lower() + "timestamp": str(SPEC_TS),
    }


async def test_secret_without_prefix_is_the_same_key() -> None:
    v = verifier(SPEC_SECRET.removeprefix("whsec_"), kind="resend")
    assert (await v.verify(request(SPEC_BODY, spec_headers()), SPEC_TS)).delivery_id == SPEC_ID


async def test_signature_made_by_the_standardwebhooks_library_is_accepted() -> None:
    secret = new_whsec()
    sent_at = datetime.fromtimestamp(NOW, UTC)
    signature = Webhook(secret).sign("msg_lib", sent_at, BODY.decode())
    headers = {
        "webhook-id": "msg_lib",
        "webhook-timestamp": str(int(NOW)),
        "webhook-signature": signature,
    }
    assert (await verifier(secret).verify(request(BODY, headers), NOW)).delivery_id == "msg_lib"


def test_fixture_signer_is_accepted_by_the_standardwebhooks_library() -> None:
    # The library checks against the wall clock, so sign "now" for it.
    secret = new_whsec()
    now = datetime.now(UTC).timestamp()
    headers = standard_webhooks_headers(secret, BODY, msg_id="msg_fx", now=now, prefix="webhook-")
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "email.bounced",
        "data": {"email_id": "e1", "to": ["a@example.com"]},
    }


async def test_one_flipped_body_byte_is_bad_signature() -> None:
    body = bytearray(SPEC_BODY)
    body[5] ^= 0x01
    assert await reason(verifier(SPEC_SECRET), bytes(body), spec_headers(), SPEC_TS) == (
        "bad_signature"
    )


async def test_id_and_timestamp_are_signed() -> None:
    v = verifier(SPEC_SECRET)
    assert await reason(v, SPEC_BODY, spec_headers(id="msg_other"), SPEC_TS) == "bad_signature"
    assert await reason(v, SPEC_BODY, spec_headers(timestamp=str(SPEC_TS + 1)), SPEC_TS) == (
        "bad_signature"
    )


async def test_rotation_both_secrets_and_several_signatures_in_one_header() -> None:
    old, new = new_whsec(), new_whsec()
    v = verifier(old, new, kind="resend")
    for secret in (old, new):
        body, headers = sign("resend", BODY, secret, now=NOW, delivery_id="msg_r")
        assert (await v.verify(request(body, headers), NOW)).delivery_id == "msg_r"
    # Svix sends one entry per active key; unknown versions and junk entries are skipped.
    _, by_other = sign("svix", BODY, new_whsec(), now=NOW, delivery_id="msg_r")
    _, by_new = sign("svix", BODY, new, now=NOW, delivery_id="msg_r")
    combined = " ".join(
        ["v1a,abc", "v1,!!notbase64", by_other["svix-signature"], by_new["svix-signature"]]
    )
    headers = {**by_new, "svix-signature": combined}
    assert (await v.verify(request(BODY, headers), NOW)).delivery_id == "msg_r"
    _, foreign = sign("svix", BODY, new_whsec(), now=NOW)
    assert await reason(v, BODY, foreign, NOW) == "bad_signature"


@pytest.mark.parametrize(
    ("skew", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)]
)
async def test_timestamp_tolerance_both_ways(skew: int, accepted: bool) -> None:
    v = verifier(SPEC_SECRET)
    now = SPEC_TS + skew
    if accepted:
        assert (await v.verify(request(SPEC_BODY, spec_headers()), now)).delivery_id == SPEC_ID
    else:
        assert await reason(v, SPEC_BODY, spec_headers(), now) == "stale_timestamp"


async def test_tolerance_comes_from_the_source() -> None:
    v = verifier(SPEC_SECRET, tolerance_s=10)
    assert await reason(v, SPEC_BODY, spec_headers(), SPEC_TS + 11) == "stale_timestamp"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"timestamp": "abc"}, "malformed_header"),
        ({"timestamp": "1614265330.0"}, "malformed_header"),
        ({"timestamp": "-1614265330"}, "malformed_header"),
        ({"timestamp": "1e9"}, "malformed_header"),
        ({"timestamp": "9" * 40}, "malformed_header"),
        ({"timestamp": ""}, "missing_header"),
        ({"signature": "v1"}, "malformed_header"),
        ({"signature": "v1,"}, "malformed_header"),
        ({"signature": "v1,***"}, "malformed_header"),
        ({"signature": "v2," + SPEC_SIG[3:]}, "malformed_header"),
        ({"signature": " ".join([SPEC_SIG] * 17)}, "malformed_header"),
        ({"signature": "v1,\u00e9" + SPEC_SIG[4:]}, "malformed_header"),
        ({"signature": "v1," + "A" * 10_000}, "malformed_header"),
        ({"signature": "v1," + base64.b64encode(b"short").decode()}, "bad_signature"),
        ({"id": "\u00e9"}, "malformed_header"),
        ({"id": "m" * 300}, "malformed_header"),
    ],
)
async def test_garbage_headers_are_verification_errors(
    changes: dict[str, str], expected: str
) -> None:
    headers = spec_headers(**changes)
    assert await reason(verifier(SPEC_SECRET), SPEC_BODY, headers, SPEC_TS) == expected


@pytest.mark.parametrize("missing", ["id", "timestamp", "signature"])
async def test_missing_header_is_rejected(missing: str) -> None:
    headers = spec_headers()
    del headers["webhook-" + missing]
    assert await reason(verifier(SPEC_SECRET), SPEC_BODY, headers, SPEC_TS) == "missing_header"


async def test_no_secret_configured_rejects() -> None:
    assert await reason(verifier(), SPEC_BODY, spec_headers(), SPEC_TS) == "no_secret"


@pytest.mark.parametrize("secret", ["whsec_SEKRIT!!!", "whsec_", "whsec_SEKRIT-_"])
def test_malformed_secret_is_a_config_error_that_does_not_echo_it(secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        verifier(secret)
    assert "SEKRIT" not in str(info.value)


def test_repr_never_shows_a_secret() -> None:
    assert "MfKQ9r8" not in repr(verifier(SPEC_SECRET))
