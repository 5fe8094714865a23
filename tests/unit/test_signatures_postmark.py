"""Postmark: HTTP basic auth on the webhook URL, optional client address allowlist."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from ingest.errors import ConfigError, VerificationError
from ingest.settings import SourceSettings
from ingest.signatures import Verifier, WebhookRequest, build_verifier
from tests.fixtures.signing import sign

BODY = b'{"RecordType":"Bounce","Type":"HardBounce","TypeCode":1,"Email":"a@example.com"}'
NOW = 1_700_000_000.0
# base64("user:pass"), written out rather than computed.
USER_PASS = "Basic dXNlcjpwYXNz"


def verifier(*secrets: str, allowed_ips: tuple[str, ...] = ()) -> Verifier:
    source = SourceSettings(
        kind="postmark", secrets=tuple(SecretStr(s) for s in secrets), allowed_ips=allowed_ips
    )
    return build_verifier(source)


def request(headers: dict[str, str], remote: str | None = "203.0.113.7") -> WebhookRequest:
    return WebhookRequest(
        body=BODY, headers=CIMultiDict(headers), url="http://x/webhooks/pm", remote=remote
    )


async def reason(v: Verifier, headers: dict[str, str], remote: str | None = "203.0.113.7") -> str:
    with pytest.raises(VerificationError) as info:
        await v.verify(request(headers, remote), NOW)
    return info.value.reason


async def test_known_credentials_are_accepted_and_not_kept() -> None:
    verified = await verifier("user:pass").verify(request({"Authorization": USER_PASS}), NOW)
    assert verified.method == "postmark-basic-auth"
    assert verified.delivery_id is None
    assert dict(verified.http_headers) == {}  # never the credentials


async def test_scheme_name_is_case_insensitive() -> None:
    v = verifier("user:pass")
    assert (await v.verify(request({"authorization": "basic dXNlcjpwYXNz"}), NOW)).method


async def test_wrong_password_and_rotation() -> None:
    v = verifier("user:old", "user:new")
    for secret in ("user:old", "user:new"):
        _, headers = sign("postmark", BODY, secret, now=NOW)
        assert (await v.verify(request(headers), NOW)).method == "postmark-basic-auth"
    _, headers = sign("postmark", BODY, "user:guess", now=NOW)
    assert await reason(v, headers) == "bad_signature"
    _, headers = sign("postmark", BODY, "user:ol", now=NOW)  # a prefix is not a match
    assert await reason(v, headers) == "bad_signature"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "missing_header"),
        ("Basic", "malformed_header"),
        ("Basic ", "malformed_header"),
        ("Bearer dXNlcjpwYXNz", "malformed_header"),
        ("Basic not-base64!", "malformed_header"),
        ("Basic \u00e9", "malformed_header"),
        ("Basic " + "A" * 5000, "malformed_header"),
        ("Basic AAAA", "bad_signature"),
    ],
)
async def test_garbage_authorization_headers(value: str, expected: str) -> None:
    assert await reason(verifier("user:pass"), {"Authorization": value}) == expected


async def test_missing_authorization_and_missing_secret() -> None:
    assert await reason(verifier("user:pass"), {}) == "missing_header"
    assert await reason(verifier(), {"Authorization": USER_PASS}) == "no_secret"


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [
        ("3.134.147.250", True),
        ("50.31.156.6", True),
        ("::ffff:50.31.156.6", True),
        ("2001:db8::1", True),
        ("3.134.147.251", False),
        ("10.0.0.1", False),
        ("not an address", False),
        (None, False),
    ],
)
async def test_ip_allowlist(remote: str | None, allowed: bool) -> None:
    v = verifier("user:pass", allowed_ips=("3.134.147.250", "50.31.156.0/24", "2001:db8::/32"))
    headers = {"Authorization": USER_PASS}
    if allowed:
        assert (await v.verify(request(headers, remote), NOW)).method
    else:
        assert await reason(v, headers, remote) == "ip_not_allowed"


def test_bad_configuration_is_a_config_error_without_the_secret() -> None:
    with pytest.raises(ConfigError) as info:
        verifier("no-colon-SEKRIT")
    assert "SEKRIT" not in str(info.value)
    with pytest.raises(ConfigError):
        verifier("user:pass", allowed_ips=("300.1.1.1",))
    assert "pass" not in repr(verifier("user:pass"))
