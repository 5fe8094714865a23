"""Which endpoint URLs may be called: shape, and the addresses they resolve to."""

from __future__ import annotations

import ipaddress

import pytest

from processors.webhooks.ssrf import UrlGuard, UrlRefused, address_refusal, check_url_shape


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.7", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),  # reserved, which Python counts as private
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_refusal(address: str, kind: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "scheme_not_allowed"),
        ("ftp://example.com/hook", "scheme_not_allowed"),
        ("javascript:alert(1)", "scheme_not_allowed"),
        ("https://user:pw@example.com/hook", "credentials_in_url"),
        ("https:///hook", "host_missing"),
        ("/relative", "scheme_not_allowed"),
    ],
)
def test_shapes_refused(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url_shape(url, allow_http=False)
    assert refused.value.reason == reason


def test_http_only_when_allowed() -> None:
    assert check_url_shape("http://example.com/x", allow_http=True).host == "example.com"
    assert check_url_shape("https://example.com/x", allow_http=False).host == "example.com"


def fake_resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


RESOLVES = {
    "public.example": ["93.184.216.34"],
    "internal.example": ["10.0.0.5"],
    "mixed.example": ["93.184.216.34", "192.168.0.9"],
    "metadata.example": ["169.254.169.254"],
    "empty.example": [],
}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "address_not_allowed"),
        ("https://[::1]:8443/hook", "address_not_allowed"),
        ("https://10.0.0.1/hook", "address_not_allowed"),
        ("https://169.254.169.254/latest/meta-data/", "address_not_allowed"),
        ("https://internal.example/hook", "address_not_allowed"),
        ("https://mixed.example/hook", "address_not_allowed"),  # any private address refuses
        ("https://metadata.example/hook", "address_not_allowed"),
        ("https://nowhere.example/hook", "unresolvable"),
        ("https://empty.example/hook", "unresolvable"),
        ("http://127.0.0.1/hook", "scheme_not_allowed"),
    ],
)
async def test_registration_check_refuses(url: str, reason: str) -> None:
    guard = UrlGuard(False, False, resolve=fake_resolver(RESOLVES))
    with pytest.raises(UrlRefused) as refused:
        await guard.check(url)
    assert refused.value.reason == reason
    assert "://" not in refused.value.detail  # names the host, not the URL


async def test_registration_check_passes_public_hosts_and_what_settings_allow() -> None:
    strict = UrlGuard(False, False, resolve=fake_resolver(RESOLVES))
    assert (await strict.check("https://public.example/hook")).host == "public.example"
    relaxed = UrlGuard(True, True, resolve=fake_resolver(RESOLVES))
    assert (await relaxed.check("http://127.0.0.1:8080/hook")).port == 8080
    assert (await relaxed.check("https://internal.example/hook")).host == "internal.example"


async def test_localhost_is_refused_through_the_system_resolver() -> None:
    with pytest.raises(UrlRefused) as refused:
        await UrlGuard(False, False).check("https://localhost/hook")
    assert refused.value.reason == "address_not_allowed"
    assert "loopback" in refused.value.detail


def test_the_delivery_time_check_refuses_private_ip_literals() -> None:
    guard = UrlGuard(False, False)
    with pytest.raises(UrlRefused):
        guard.check_literal("https://192.168.1.20/hook")
    assert guard.check_literal("https://example.com/hook").host == "example.com"
    assert UrlGuard(True, True).check_literal("http://127.0.0.1/hook").host == "127.0.0.1"
