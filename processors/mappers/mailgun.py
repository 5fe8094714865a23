"""Mailgun: one event per webhook under ``event-data``; its ``id`` is the dedupe key.

``failed`` is split by ``severity`` and ``reason``: a temporary failure is retried by
Mailgun (``deferred``, not a bounce: one greylisted message would otherwise count as
several soft bounces); a permanent failure is a hard bounce, except Mailgun's own
suppression-list drops (``suppress-*``: ``dropped``) and ``old`` (retries of temporary
failures exhausted: ``bounced.soft``).
"""

from __future__ import annotations

from processors.addresses import NormaliseOptions, domain_of
from processors.mappers.base import (
    Outcome,
    body_hash,
    bounce_type,
    correlation,
    from_unix,
    joined,
    require_recipient,
    unknown_type,
)
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.providers.mailgun import MailgunEventData, MailgunWebhook
from schemas.raw import RawWebhook

TYPES: dict[str, EventType] = {
    "accepted": "sent",
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
    # Legacy: Mailgun refused the message outright.
    "rejected": "dropped",
}


def _failed(e: MailgunEventData, options: NormaliseOptions) -> tuple[EventType, BounceDetail]:
    status = e.delivery_status
    by_policy = False
    kind: EventType
    if e.severity == "temporary":
        kind = "deferred"
    elif e.severity == "permanent" and (e.reason or "").startswith("suppress-"):
        kind = "dropped"
    elif e.severity == "permanent":
        kind = "bounced.soft" if e.reason == "old" else "bounced.hard"
    else:
        kind, by_policy = bounce_type(None, options)
    return kind, BounceDetail(
        code=status.code if status else None,
        reason=(status.message or status.description or None) if status else None,
        provider_class=joined(e.severity, e.reason),
        classified_by_policy=by_policy,
    )


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    e = MailgunWebhook.model_validate_json(raw.body).event_data
    bounce = None
    if e.event == "failed":
        kind, bounce = _failed(e, options)
    elif (mapped := TYPES.get(e.event)) is not None:
        kind = mapped
    else:
        raise unknown_type("mailgun", e.event)
    headers = e.message.headers
    sender = headers.from_ or (e.envelope.sender if e.envelope else None)
    return [
        Outcome(
            dedupe_key=f"mailgun:{e.id}" if e.id else body_hash(raw),
            type=kind,
            recipient=require_recipient(e.recipient, "event-data.recipient"),
            # Mailgun stores it without the angle brackets the header has on the wire.
            message_id=headers.message_id.strip("<>") if headers.message_id else None,
            occurred_at=from_unix(e.timestamp) if e.timestamp is not None else None,
            bounce=bounce,
            url=e.url if kind == "clicked" else None,
            correlation_id=correlation(e.user_variables),
            sending_domain=domain_of(sender),
        )
    ]
