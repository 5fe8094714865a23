"""Resend; ``map_email`` also maps Svix sources' ``email.*`` events (Resend's shape).

The dedupe key is the Standard Webhooks message id (``webhook-id``/``svix-id`` header),
which stays the same across the provider's retries of one event.
"""

from __future__ import annotations

from datetime import datetime

from processors.addresses import NormaliseOptions, domain_of
from processors.errors import NormaliseError
from processors.mappers.base import (
    Outcome,
    body_hash,
    bounce_type,
    header,
    joined,
    unknown_type,
)
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.providers.resend import ResendBounce, ResendData, ResendEvent
from schemas.raw import RawWebhook

TYPES: dict[str, EventType] = {
    "email.sent": "sent",
    "email.delivered": "delivered",
    "email.delivery_delayed": "deferred",
    "email.complained": "complained",
    "email.opened": "opened",
    "email.clicked": "clicked",
    # Resend did not send: an error (invalid recipient, quota, unverified domain), or
    # the address is on Resend's own suppression list.
    "email.failed": "dropped",
    "email.suppressed": "dropped",
}
# Known, no delivery outcome: scheduling, inbound mail, contact and domain changes.
IGNORED = frozenset({"email.scheduled", "email.received"})
IGNORED_PREFIXES = ("contact.", "domain.")
# The payload names the message's recipients, not the one who bounced or complained.
PER_RECIPIENT = frozenset({"email.bounced", "email.complained"})
BOUNCE_CLASS = {"Permanent": True, "Transient": False}  # "Undetermined": policy decides


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    event = ResendEvent.model_validate_json(raw.body)
    if event.type in IGNORED or event.type.startswith(IGNORED_PREFIXES):
        return []
    return map_email("resend", raw, options, event.type, event.created_at, event.data)


def map_email(
    provider: str,
    raw: RawWebhook,
    options: NormaliseOptions,
    kind_name: str,
    at: datetime | None,
    data: ResendData,
) -> list[Outcome]:
    bounce = None
    if kind_name == "email.bounced":
        b = data.bounce or ResendBounce()
        kind, by_policy = bounce_type(BOUNCE_CLASS.get(b.type or ""), options)
        bounce = BounceDetail(
            reason=b.message,
            provider_class=joined(b.type, b.sub_type),
            classified_by_policy=by_policy,
        )
    elif (mapped := TYPES.get(kind_name)) is not None:
        kind = mapped
    else:
        raise unknown_type(provider, kind_name)
    if not data.email_id:
        raise NormaliseError("invalid_payload", "data.email_id: missing")
    recipients = [to for to in data.to if to]
    if not recipients:
        raise NormaliseError("missing_recipient", "data.to")
    if len(recipients) > 1 and kind_name in PER_RECIPIENT:
        # Fanning a bounce out would suppress every co-recipient for one bad address.
        raise NormaliseError("ambiguous_recipient", f"{kind_name} names {len(recipients)}")
    event_id = header(raw, "webhook-id", "svix-id") or raw.delivery_id
    key = f"{provider}:{event_id}" if event_id else body_hash(raw)
    click = data.click.link if data.click and kind == "clicked" else None
    return [
        Outcome(
            dedupe_key=key if len(recipients) == 1 else f"{key}:{to}",
            type=kind,
            recipient=to,
            message_id=data.email_id,
            occurred_at=at,
            bounce=bounce,
            url=click,
            correlation_id=data.tag("correlation_id"),
            sending_domain=domain_of(data.from_),
        )
        for to in recipients
    ]
