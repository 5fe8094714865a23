"""Mailgun webhooks (API v3): ``{signature{timestamp, token, signature}, event-data{...}}``.

``event-data``: ``event`` (accepted, delivered, failed, opened, clicked, complained,
unsubscribed, rejected), ``severity`` (failed: permanent / temporary), ``reason``
(failed: e.g. bounce, generic, old, suppress-bounce), ``recipient``, ``id`` (unique per
event), float unix ``timestamp``, ``message.headers{message-id, from}``,
``delivery-status{code, message, description}``, ``envelope{sender}``, ``url`` (clicks)
and ``user-variables`` (our metadata, echoed). The signature block is ingest's business.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def _hyphenated(name: str) -> str:
    return name.replace("_", "-")


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", alias_generator=_hyphenated, coerce_numbers_to_str=True
    )


class MailgunHeaders(_Model):
    message_id: str | None = None
    from_: str | None = Field(default=None, alias="from")


class MailgunMessage(_Model):
    headers: MailgunHeaders = Field(default_factory=MailgunHeaders)


class MailgunDeliveryStatus(_Model):
    code: str | None = None
    message: str | None = None
    description: str | None = None


class MailgunEnvelope(_Model):
    sender: str | None = None


class MailgunEventData(_Model):
    model_config = ConfigDict(allow_inf_nan=False)

    event: str
    id: str | None = None
    timestamp: float | None = None
    recipient: str | None = None
    severity: str | None = None
    reason: str | None = None
    message: MailgunMessage = Field(default_factory=MailgunMessage)
    delivery_status: MailgunDeliveryStatus | None = None
    envelope: MailgunEnvelope | None = None
    url: str | None = None
    user_variables: dict[str, Any] = Field(default_factory=dict)


class MailgunWebhook(_Model):
    event_data: MailgunEventData
