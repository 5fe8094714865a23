"""Amazon SES through SNS: the SES event is a JSON string inside the SNS envelope, and one
event can name several recipients (one canonical event each, keyed per recipient).

Dedupe: ``ses:<feedbackId>:<recipient>`` for bounces and complaints (the same feedback
reaches us once per SNS topic it was published to), else ``ses:<SNS MessageId>:<recipient>``
(SNS keeps the MessageId across its retries).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from processors.addresses import NormaliseOptions, domain_of
from processors.errors import NormaliseError
from processors.mappers.base import (
    Outcome,
    bounce_type,
    correlation,
    joined,
    require_recipient,
    unknown_type,
)
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.providers.ses import SesEvent, SesMail, SesRecipient, SnsEnvelope
from schemas.raw import RawWebhook

BOUNCE_CLASS = {"Permanent": True, "Transient": False}  # "Undetermined": policy decides
# Recipients taken from mail.destination: the event applies to the whole message.
WHOLE_MESSAGE: dict[str, EventType] = {
    "Send": "sent",
    "Reject": "dropped",
    "Rendering Failure": "dropped",
    "Open": "opened",
    "Click": "clicked",
}
# SES's test message when a topic is attached to an identity: no outcome.
IGNORED = frozenset({"AmazonSnsSubscriptionSucceeded"})

Recipient = tuple[str | None, BounceDetail | None]


def _missing(part: str) -> NormaliseError:
    return NormaliseError("invalid_payload", f"Message.{part}: missing")


def _with_detail(
    recipients: Iterable[SesRecipient], cls: str | None, by_policy: bool = False
) -> list[Recipient]:
    return [
        (
            r.email_address,
            BounceDetail(
                code=r.status,
                reason=r.diagnostic_code,
                provider_class=cls,
                classified_by_policy=by_policy,
            ),
        )
        for r in recipients
    ]


def _per_recipient(
    event: SesEvent, name: str, mail: SesMail, options: NormaliseOptions
) -> tuple[EventType, list[Recipient], datetime | None, str | None] | None:
    """(type, recipients, time, feedback id) of an event, None when it has no outcome."""
    kind: EventType
    if name == "Bounce":
        if (b := event.bounce) is None:
            raise _missing("bounce")
        kind, by_policy = bounce_type(BOUNCE_CLASS.get(b.bounce_type or ""), options)
        cls = joined(b.bounce_type, b.bounce_sub_type)
        return kind, _with_detail(b.bounced_recipients, cls, by_policy), b.timestamp, b.feedback_id
    if name == "Complaint":
        if (c := event.complaint) is None:
            raise _missing("complaint")
        if c.complaint_feedback_type == "not-spam":  # the recipient says it is *not* spam
            return None
        rs: list[Recipient] = [(r.email_address, None) for r in c.complained_recipients]
        return "complained", rs, c.timestamp, c.feedback_id
    if name == "Delivery":
        if (d := event.delivery) is None:
            raise _missing("delivery")
        return "delivered", [(r, None) for r in d.recipients], d.timestamp, None
    if name == "DeliveryDelay":
        if (dd := event.delivery_delay) is None:
            raise _missing("deliveryDelay")
        return "deferred", _with_detail(dd.delayed_recipients, dd.delay_type), dd.timestamp, None
    if name == "Subscription":
        sub = event.subscription
        prefs = sub.new_topic_preferences if sub else None
        if prefs is None or not prefs.unsubscribe_all:
            return None  # topic-level preference changes: not an unsubscribe from all mail
        at = sub.timestamp if sub else None
        return "unsubscribed", [(r, None) for r in mail.destination], at, None
    if name in WHOLE_MESSAGE:
        part = event.open or event.click or event.reject
        at = part.timestamp if part and part.timestamp else mail.timestamp
        return WHOLE_MESSAGE[name], [(r, None) for r in mail.destination], at, None
    raise unknown_type("ses", name)


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    envelope = SnsEnvelope.model_validate_json(raw.body)
    if envelope.type != "Notification":  # SubscriptionConfirmation & co: control messages
        return []
    event = SesEvent.model_validate_json(envelope.message)
    name = event.kind
    if name in IGNORED:
        return []
    if name is None:
        raise _missing("eventType")
    if (mail := event.mail) is None:
        raise _missing("mail")
    mapped = _per_recipient(event, name, mail, options)
    if mapped is None:
        return []
    kind, recipients, at, feedback_id = mapped
    if not recipients:
        raise NormaliseError("missing_recipient", f"ses {name} names no recipient")
    key = f"ses:{feedback_id or envelope.message_id}"
    url = event.click.link if kind == "clicked" and event.click else None
    correlation_id = correlation(mail.tags)
    sending_domain = domain_of(mail.source)
    outcomes = []
    for address, detail in recipients:
        recipient = require_recipient(address, f"ses {name} recipient")
        outcomes.append(
            Outcome(
                dedupe_key=f"{key}:{recipient}",
                type=kind,
                recipient=recipient,
                message_id=mail.message_id,
                occurred_at=at or envelope.timestamp,
                bounce=detail,
                url=url,
                correlation_id=correlation_id,
                sending_domain=sending_domain,
            )
        )
    return outcomes
