"""Address normalisation: the canonical form of a recipient is the key of ``email.events``
and of the ``addresses`` table, so every provider's addresses go through here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from processors.errors import NormaliseError

# RFC 5321: 64 octets of local part, 255 of domain. Anything longer is not an address
# and would make an absurd Kafka key.
MAX_ADDRESS_CHARS = 320


class NormaliseOptions(BaseModel):
    """How addresses are normalised and how an unclassified bounce counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Domains are case-insensitive; local parts are in theory case-sensitive, in
    # practice never: lower-casing them is what merges "Bob@x" and "bob@x".
    lowercase_local_part: bool = True
    strip_plus_tags: bool = False
    # A bounce whose class the provider does not say (generic "email.bounced", SES and
    # Resend "Undetermined"): soft is the cautious default, 3 of them suppress anyway.
    unclassified_bounce: Literal["hard", "soft"] = "soft"


DEFAULT_OPTIONS = NormaliseOptions()


def normalise_address(address: str, options: NormaliseOptions = DEFAULT_OPTIONS) -> str:
    """Canonical form of an address; raises ``NormaliseError("invalid_recipient")``."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or not domain
        or len(address) > MAX_ADDRESS_CHARS
        # isprintable() is False for control and Unicode separator characters.
        or " " in address
        or not address.isprintable()
    ):
        raise NormaliseError("invalid_recipient", "not an email address")
    if options.strip_plus_tags:
        local = local.split("+", 1)[0] or local
    if options.lowercase_local_part:
        local = local.lower()
    return f"{local}@{domain.lower()}"


def domain_of(sender: str | None) -> str | None:
    """The domain of a From/sender value (``a@x.com`` or ``"A" <a@x.com>``), lower-cased."""
    if not sender:
        return None
    start = sender.rfind("<")
    if start >= 0:
        end = sender.find(">", start)
        sender = sender[start + 1 : end] if end > start else sender[start + 1 :]
    local, at, domain = sender.strip().rpartition("@")
    domain = domain.lower()
    if not at or not local or not domain or " " in domain or not domain.isprintable():
        return None
    return domain
