"""Postmark: one event per webhook, discriminated by ``RecordType``.

Bounce records carry a ``Type`` that is not always a bounce: ``Transient`` is a delay,
``ManuallyDeactivated`` a drop, ``SpamComplaint`` a complaint, and some (auto-responders,
address changes) carry no delivery outcome at all.
"""

from __future__ import annotations

from processors.addresses import NormaliseOptions, domain_of
from processors.errors import NormaliseError
from processors.mappers.base import (
    Outcome,
    body_hash,
    bounce_type,
    correlation,
    require_recipient,
    unknown_type,
)
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.providers.postmark import PostmarkEvent
from schemas.raw import RawWebhook

RECORD_TYPES: dict[str, EventType] = {
    "Delivery": "delivered",
    "SpamComplaint": "complained",
    "Open": "opened",
    "Click": "clicked",
}
# Bounce ``Type`` -> outcome; None: no delivery outcome. A Type not listed here
# (including "Unknown") is a bounce of unknown class: policy decides.
BOUNCE_TYPES: dict[str, EventType | None] = {
    "HardBounce": "bounced.hard",
    "BadEmailAddress": "bounced.hard",
    "SoftBounce": "bounced.soft",
    "DnsError": "bounced.soft",
    "Blocked": "bounced.soft",
    "SpamNotification": "bounced.soft",
    "VirusNotification": "bounced.soft",
    "ChallengeVerification": "bounced.soft",
    "DMARCPolicy": "bounced.soft",
    "Transient": "deferred",
    "SpamComplaint": "complained",
    "Unsubscribe": "unsubscribed",
    "ManuallyDeactivated": "dropped",
    "Unconfirmed": "dropped",
    "SMTPApiError": "dropped",
    "TemplateRenderingFailed": "dropped",
    "Subscribe": None,
    "AutoResponder": None,
    "AddressChange": None,
    "OpenRelayTest": None,
    "InboundError": None,
}


def _bounce(e: PostmarkEvent, options: NormaliseOptions) -> tuple[EventType | None, BounceDetail]:
    by_policy = False
    kind: EventType | None
    if e.type in BOUNCE_TYPES:
        kind = BOUNCE_TYPES[e.type]
    else:
        kind, by_policy = bounce_type(None, options)
    detail = BounceDetail(
        code=e.type_code,
        reason=e.details or e.description,
        provider_class=e.type,
        classified_by_policy=by_policy,
    )
    return kind, detail


def _subscription_change(e: PostmarkEvent) -> EventType | None:
    if e.suppress_sending is None:
        raise NormaliseError("invalid_payload", "SuppressSending: missing")
    # A reactivation is an operator's decision (our admin unsuppress), not an outcome;
    # a suppression for a hard bounce or complaint repeats the Bounce/SpamComplaint record.
    if not e.suppress_sending or e.suppression_reason in ("HardBounce", "SpamComplaint"):
        return None
    return "unsubscribed"


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    e = PostmarkEvent.model_validate_json(raw.body)
    bounce = None
    kind: EventType | None
    if e.record_type == "Bounce":
        kind, bounce = _bounce(e, options)
    elif e.record_type == "SubscriptionChange":
        kind = _subscription_change(e)
    elif e.record_type in RECORD_TYPES:
        kind = RECORD_TYPES[e.record_type]
    else:
        raise unknown_type("postmark", e.record_type)
    if kind is None:
        return []
    recipient = require_recipient(e.email or e.recipient, "Email/Recipient")
    at = e.occurred_at()
    if e.id:  # Bounce and SpamComplaint records have their own id
        key = f"postmark:{e.id}"
    elif at is not None:
        key = f"postmark:{e.message_id or '-'}:{e.record_type}:{at.isoformat()}:{recipient}"
    else:
        key = body_hash(raw)
    return [
        Outcome(
            dedupe_key=key,
            type=kind,
            recipient=recipient,
            message_id=e.message_id,
            occurred_at=at,
            bounce=bounce,
            url=e.original_link if kind == "clicked" else None,
            correlation_id=correlation(e.metadata),
            sending_domain=domain_of(e.from_),
        )
    ]
