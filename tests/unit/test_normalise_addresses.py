"""Address normalisation: the key of email.events and of the addresses table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from processors.addresses import NormaliseOptions, domain_of, normalise_address
from processors.errors import NormaliseError


def test_default_strips_and_lowercases_the_whole_address() -> None:
    assert normalise_address("  Jane.Doe+News@Example.COM \n") == "jane.doe+news@example.com"


def test_plus_tags_are_kept_unless_asked() -> None:
    options = NormaliseOptions(strip_plus_tags=True)
    assert normalise_address("Jane+news+x@Example.com", options) == "jane@example.com"
    # An address that *is* only a tag keeps it rather than becoming "@example.com".
    assert normalise_address("+tag@example.com", options) == "+tag@example.com"


def test_local_part_case_can_be_kept_while_the_domain_is_lowercased() -> None:
    options = NormaliseOptions(lowercase_local_part=False)
    assert normalise_address("Jane.Doe@Example.COM", options) == "Jane.Doe@example.com"


@pytest.mark.parametrize(
    "address",
    [
        "no-at-sign",
        "@example.com",
        "jane@",
        "",
        "   ",
        "ja ne@example.com",
        "jane@exa\nmple.com",
        "jane\x00@example.com",
        "Jane <jane@example.com>",
        "a" * 310 + "@example.com",
    ],
)
def test_what_is_not_an_address_is_an_invalid_recipient(address: str) -> None:
    with pytest.raises(NormaliseError) as info:
        normalise_address(address)
    assert info.value.reason == "invalid_recipient"
    assert info.value.detail == "not an email address"  # the input is never echoed


def test_options_are_frozen_and_reject_unknown_settings() -> None:
    options = NormaliseOptions()
    with pytest.raises(ValidationError):
        options.strip_plus_tags = True
    with pytest.raises(ValidationError):
        NormaliseOptions(unclassified_bounce="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        NormaliseOptions(lowercase=True)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        ("billing@Mail.Acme.dev", "mail.acme.dev"),
        ("Acme Billing <billing@mg.acme.dev>", "mg.acme.dev"),
        ('"Acme, Inc." <no-reply@ses.acme.dev>', "ses.acme.dev"),
        ("<bounce@acme.dev", "acme.dev"),
        ("Acme", None),
        ("@acme.dev", None),
        ("", None),
        (None, None),
    ],
)
def test_sending_domain_comes_from_the_from_address(sender: str | None, domain: str | None) -> None:
    assert domain_of(sender) == domain
