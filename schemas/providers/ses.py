"""Amazon SES notifications delivered by SNS.

The body is the SNS envelope ``{Type, MessageId, TopicArn, Message, Timestamp, ...}``;
``Message`` is a JSON *string* holding the SES event. Two SES flavours exist: identity
notifications (``notificationType``: Bounce, Complaint, Delivery) and event publishing
(``eventType``: Send, Reject, Bounce, Complaint, Delivery, DeliveryDelay, Open, Click,
Rendering Failure, Subscription). Both share the shapes below; one event can name
several recipients (``bouncedRecipients``, ``complainedRecipients``, ``recipients``,
``delayedRecipients`` or ``mail.destination``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel, to_pascal


class SnsEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_pascal)

    type: str
    message_id: str
    message: str = ""
    timestamp: datetime | None = None


class _Ses(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel)


class SesRecipient(_Ses):
    email_address: str | None = None
    status: str | None = None
    action: str | None = None
    diagnostic_code: str | None = None


class SesBounce(_Ses):
    bounce_type: str | None = None
    bounce_sub_type: str | None = None
    bounced_recipients: list[SesRecipient] = Field(default_factory=list)
    timestamp: datetime | None = None
    feedback_id: str | None = None


class SesComplaint(_Ses):
    complained_recipients: list[SesRecipient] = Field(default_factory=list)
    timestamp: datetime | None = None
    feedback_id: str | None = None
    complaint_feedback_type: str | None = None


class SesDelivery(_Ses):
    recipients: list[str] = Field(default_factory=list)
    timestamp: datetime | None = None
    smtp_response: str | None = None


class SesDeliveryDelay(_Ses):
    delay_type: str | None = None
    delayed_recipients: list[SesRecipient] = Field(default_factory=list)
    timestamp: datetime | None = None


class SesEngagement(_Ses):
    """``open``, ``click`` and ``reject`` (reject has ``reason`` and no timestamp)."""

    timestamp: datetime | None = None
    link: str | None = None
    reason: str | None = None


class SesTopicPreferences(_Ses):
    unsubscribe_all: bool = False


class SesSubscription(_Ses):
    timestamp: datetime | None = None
    new_topic_preferences: SesTopicPreferences | None = None


class SesMail(_Ses):
    message_id: str
    timestamp: datetime | None = None
    source: str | None = None
    destination: list[str] = Field(default_factory=list)
    # Event publishing only: message tags, each a list of values.
    tags: dict[str, list[str]] = Field(default_factory=dict)


class SesEvent(_Ses):
    event_type: str | None = None
    notification_type: str | None = None
    mail: SesMail | None = None
    bounce: SesBounce | None = None
    complaint: SesComplaint | None = None
    delivery: SesDelivery | None = None
    delivery_delay: SesDeliveryDelay | None = None
    open: SesEngagement | None = None
    click: SesEngagement | None = None
    reject: SesEngagement | None = None
    subscription: SesSubscription | None = None

    @property
    def kind(self) -> str | None:
        return self.event_type or self.notification_type
