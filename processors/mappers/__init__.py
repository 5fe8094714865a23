"""Provider payload -> outcomes, one module per provider (models in ``schemas/providers``)."""

from __future__ import annotations

from processors.mappers import (
    generic,
    mailgun,
    mandrill,
    nexuspromail,
    postmark,
    resend,
    sendgrid,
    ses,
    svix,
)
from processors.mappers.base import Mapper, Outcome

MAPPERS: dict[str, Mapper] = {
    "nexuspromail": nexuspromail.map_raw,
    "generic": generic.map_raw,
    "resend": resend.map_raw,
    "svix": svix.map_raw,
    "sendgrid": sendgrid.map_raw,
    "mailgun": mailgun.map_raw,
    "postmark": postmark.map_raw,
    "ses": ses.map_raw,
    "mandrill": mandrill.map_raw,
}

__all__ = ["MAPPERS", "Mapper", "Outcome"]
