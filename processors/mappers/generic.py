"""The generic platform (seed 003): no event id, so the body hash is the dedupe key."""

from __future__ import annotations

from processors.addresses import NormaliseOptions
from processors.mappers.base import Outcome, body_hash, bounce_type, require_recipient, unknown_type
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.providers.generic import GenericEvent
from schemas.raw import RawWebhook

TYPES: dict[str, EventType] = {
    # Seed 003 names these ...
    "email.delivered": "delivered",
    "email.open": "opened",
    "email.click": "clicked",
    "email.unsubscribe": "unsubscribed",
    # ... and uses these spellings in its own examples and its provider list (Resend's).
    "email.sent": "sent",
    "email.opened": "opened",
    "email.clicked": "clicked",
    "email.unsubscribed": "unsubscribed",
    "email.complained": "complained",
}
# The platform does not say hard or soft: policy decides (NormaliseOptions).
BOUNCES = frozenset({"email.bounced", "email.bounce"})


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    event = GenericEvent.model_validate_json(raw.body)
    bounce = None
    if event.type in BOUNCES:
        kind, by_policy = bounce_type(None, options)
        bounce = BounceDetail(provider_class=event.type, classified_by_policy=by_policy)
    elif (mapped := TYPES.get(event.type)) is not None:
        kind = mapped
    else:
        raise unknown_type("generic", event.type)
    return [
        Outcome(
            dedupe_key=body_hash(raw),
            type=kind,
            recipient=require_recipient(event.recipient, "recipient"),
            message_id=event.email_id,
            occurred_at=event.timestamp,
            bounce=bounce,
        )
    ]
