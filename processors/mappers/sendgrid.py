"""SendGrid: a JSON array; each element is one event with its own ``sg_event_id``."""

from __future__ import annotations

from processors.addresses import NormaliseOptions
from processors.mappers.base import (
    Outcome,
    body_hash,
    bounce_type,
    from_unix,
    require_recipient,
    unknown_type,
)
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.providers.sendgrid import SendGridBatch, SendGridEvent
from schemas.raw import RawWebhook

TYPES: dict[str, EventType] = {
    "processed": "sent",
    "delivered": "delivered",
    "deferred": "deferred",
    "dropped": "dropped",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
# Known, but no delivery outcome: a resubscribe is the recipient undoing an unsubscribe
# of one group, which our suppression does not model (an operator unsuppresses).
IGNORED = frozenset({"group_resubscribe"})
# Bounce ``type``: "bounce" is a hard bounce, "blocked" a temporary refusal (soft).
BOUNCE_CLASS = {"bounce": True, "blocked": False}
# ``sg_message_id`` is the X-Message-Id the send API returned plus a relay suffix.
MESSAGE_ID_SUFFIXES = (".filter", ".recvd-")


def message_id(sg_message_id: str | None) -> str | None:
    if not sg_message_id:
        return None
    for suffix in MESSAGE_ID_SUFFIXES:
        cut = sg_message_id.find(suffix)
        if cut > 0:
            return sg_message_id[:cut]
    return sg_message_id


def _outcome(e: SendGridEvent, key: str, options: NormaliseOptions) -> Outcome:
    bounce = None
    if e.event == "bounce":
        kind, by_policy = bounce_type(BOUNCE_CLASS.get(e.type or ""), options)
        bounce = BounceDetail(
            code=e.status, reason=e.reason, provider_class=e.type, classified_by_policy=by_policy
        )
    elif (mapped := TYPES.get(e.event)) is not None:
        kind = mapped
        detail = e.reason or e.response
        if detail and kind in ("dropped", "deferred"):
            bounce = BounceDetail(code=e.status, reason=detail, provider_class=e.event)
    else:
        raise unknown_type("sendgrid", e.event)
    return Outcome(
        dedupe_key=key,
        type=kind,
        recipient=require_recipient(e.email, "email"),
        message_id=message_id(e.sg_message_id),
        occurred_at=from_unix(e.timestamp),
        bounce=bounce,
        url=e.url if kind == "clicked" else None,
        correlation_id=e.correlation_id or None,
    )


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    events = SendGridBatch.validate_json(raw.body)
    fallback: str | None = None
    outcomes = []
    for i, e in enumerate(events):
        if e.event in IGNORED:
            continue
        if e.sg_event_id:
            key = f"sendgrid:{e.sg_event_id}"
        else:
            fallback = fallback or body_hash(raw)
            key = f"{fallback}:{i}"
        outcomes.append(_outcome(e, key, options))
    return outcomes
