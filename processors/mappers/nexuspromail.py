"""NexusProMail: one event per webhook; its ``id`` is the dedupe key."""

from __future__ import annotations

from processors.addresses import NormaliseOptions
from processors.mappers.base import Outcome, require_recipient, unknown_type
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.providers.nexuspromail import NexusEvent
from schemas.raw import RawWebhook

# Seed 000 names exactly these; they already are canonical types.
TYPES: dict[str, EventType] = {
    t: t
    for t in (
        "delivered",
        "opened",
        "clicked",
        "bounced.hard",
        "bounced.soft",
        "complained",
        "unsubscribed",
    )
}


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    event = NexusEvent.model_validate_json(raw.body)
    kind = TYPES.get(event.type)
    if kind is None:
        raise unknown_type("nexuspromail", event.type)
    data = event.data
    bounce = None
    if kind in ("bounced.hard", "bounced.soft"):
        bounce = BounceDetail(
            code=data.bounce_code, reason=data.bounce_reason, provider_class=event.type
        )
    return [
        Outcome(
            dedupe_key=f"nexuspromail:{event.id}",
            type=kind,
            recipient=require_recipient(data.email, "data.email"),
            message_id=data.message_id,
            occurred_at=data.timestamp or event.created_at,
            bounce=bounce,
            url=data.url,
            correlation_id=data.correlation_id,
        )
    ]
