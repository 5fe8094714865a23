"""Types shared by every schema module."""

from __future__ import annotations

from typing import Literal, get_args

ProviderKind = Literal[
    "nexuspromail",
    "generic",
    "svix",
    "resend",
    "sendgrid",
    "mailgun",
    "postmark",
    "ses",
    "mandrill",
]
PROVIDER_KINDS: tuple[str, ...] = get_args(ProviderKind)

EventType = Literal[
    "sent",
    "delivered",
    "deferred",
    "bounced.hard",
    "bounced.soft",
    "dropped",
    "complained",
    "unsubscribed",
    "opened",
    "clicked",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

SuppressionScope = Literal["all", "marketing"]
