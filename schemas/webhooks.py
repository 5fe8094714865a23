"""Outbound webhooks: the manage API's bodies (seed 003), the subscription records on the
compacted ``webhooks.subscriptions`` topic, the delivery records of the ``webhook_deliveries``
table and the body POSTed to an endpoint.

Event types are seed 003's (``email.open``, ``email.click``, ``email.bounce``,
``email.unsubscribe``) plus ``email.delivered``, ``email.complaint`` and
``suppression.changed`` (a suppression command). The ``events`` field is a comma-separated
string as the seed shows it; its short forms (``open,click,bounce``) are accepted and
echoed as written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    field_serializer,
    model_validator,
)

from schemas.commands import SuppressionCommand
from schemas.events import CanonicalEvent

_FROZEN = ConfigDict(frozen=True, extra="forbid")

WebhookEventType = Literal[
    "email.open",
    "email.click",
    "email.bounce",
    "email.unsubscribe",
    "email.delivered",
    "email.complaint",
    "suppression.changed",
]
WEBHOOK_EVENT_TYPES: tuple[str, ...] = get_args(WebhookEventType)
# Seed 003 writes the email types without their prefix in ``events`` ("open,click").
SHORT_NAMES: dict[str, str] = {
    name.removeprefix("email."): name for name in WEBHOOK_EVENT_TYPES if name.startswith("email.")
}
MAX_URL_CHARS = 2048
MAX_SECRET_CHARS = 256
DeliveryStatus = Literal["pending", "delivered", "failed"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)


def event_types(events: str) -> frozenset[str]:
    """The full event type names an ``events`` string subscribes to (it is valid)."""
    return frozenset(SHORT_NAMES.get(name, name) for name in _tokens(events))


def _tokens(events: str) -> list[str]:
    return [part.strip() for part in events.split(",") if part.strip()]


def _normalise_events(events: str) -> str:
    """Trimmed, duplicates dropped (first kept), each a known type or a short form."""
    kept: dict[str, str] = {}
    for name in _tokens(events):
        full = SHORT_NAMES.get(name, name)
        if full not in WEBHOOK_EVENT_TYPES:
            known = ", ".join(WEBHOOK_EVENT_TYPES)
            raise ValueError(f"unknown event type {name[:40]!r} (known: {known})")
        kept.setdefault(full, name)
    if not kept:
        raise ValueError("at least one event type is needed")
    return ",".join(kept.values())


# A comma-separated list of event types, e.g. "email.bounce,email.unsubscribe" or "open,click".
EventList = Annotated[str, Field(max_length=512), AfterValidator(_normalise_events)]
# The seed shows timestamps to the second with a Z ("2026-03-03T10:00:00Z").
SeedTime = Annotated[
    AwareDatetime,
    PlainSerializer(lambda t: seed_time(t), return_type=str, when_used="json"),
]


class WebhookCreate(BaseModel):
    """``POST /api/webhooks/manage``: seed 003's request. No ``secret``: one is generated and
    returned once, in the answer."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    url: str = Field(min_length=1, max_length=MAX_URL_CHARS, description="HTTPS endpoint URL.")
    events: EventList
    secret: SecretStr | None = Field(
        default=None, min_length=8, max_length=MAX_SECRET_CHARS, description="HMAC key."
    )
    active: bool = True


class WebhookUpdate(BaseModel):
    """``PATCH /api/webhooks/manage/{id}``: any of url, events, active."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_CHARS)
    events: EventList | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> WebhookUpdate:
        if self.url is None and self.events is None and self.active is None:
            raise ValueError("give at least one of url, events, active")
        return self


class SecretRotation(BaseModel):
    """``POST /api/webhooks/manage/{id}/rotate-secret``: a new secret, or none to generate one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    secret: SecretStr | None = Field(default=None, min_length=8, max_length=MAX_SECRET_CHARS)


class Webhook(BaseModel):
    """One endpoint as seed 003 lists it."""

    model_config = _FROZEN
    id: int
    url: str
    events: str
    active: bool
    created_at: SeedTime


class WebhookCreated(Webhook):
    """The create answer; ``secret`` only when it was generated (shown this once)."""

    secret: str | None = Field(default=None, description="Generated secret, shown only once.")


class WebhookList(BaseModel):
    model_config = _FROZEN
    webhooks: list[Webhook]


class SecretRotated(BaseModel):
    """The rotate answer: the endpoint's new secret, shown only once."""

    model_config = _FROZEN
    id: int
    secret: str


class SubscriptionRecord(BaseModel):
    """Value of ``webhooks.subscriptions`` (compacted, one partition, key ``webhook:<uid>``).

    ``id`` is None in the record that creates the endpoint: the id is that record's offset
    plus one (one partition, so the broker hands out each offset once: no two creations
    can get the same id, whichever worker appends them). Every later record of the key
    carries it. A tombstone deletes the endpoint. ``secret`` is the endpoint's HMAC key:
    written to the topic in clear (restrict the topic's ACLs), masked in reprs and in
    every other serialisation.
    """

    model_config = _FROZEN
    schema_version: Literal[1] = 1
    id: int | None = Field(default=None, ge=1)
    url: str
    events: EventList
    active: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime
    secret: SecretStr
    deactivated_reason: str | None = Field(
        default=None, description="Why the platform deactivated it ('gone': it answered 410)."
    )

    @field_serializer("secret", when_used="always")
    def _secret(self, secret: SecretStr, info: SerializationInfo) -> str:
        context = info.context if isinstance(info.context, dict) else {}
        return secret.get_secret_value() if context.get("reveal_secrets") else "**********"

    def to_topic(self) -> bytes:
        """The record's bytes on the topic (the secret revealed: signing needs it)."""
        return self.model_dump_json(context={"reveal_secrets": True}).encode()

    def public(self, webhook_id: int) -> Webhook:
        return Webhook(
            id=webhook_id,
            url=self.url,
            events=self.events,
            active=self.active,
            created_at=self.created_at,
        )


class WebhookPayload(BaseModel):
    """What a delivery says, stored once with the delivery (``DeliveryRecord.payload``)."""

    model_config = _FROZEN
    id: str = Field(description="Delivery id (also X-Webhook-Id): dedupe on it.")
    type: WebhookEventType
    webhook_id: int = Field(description="The endpoint's id.")
    event_id: str = Field(
        description="The canonical event's dedupe key, or the suppression command's id."
    )
    created_at: AwareDatetime = Field(
        description="When the platform received the event (for suppression.changed: when "
        "the command was published)."
    )
    email_id: str | None = Field(default=None, description="Provider message id.")
    recipient: str = Field(description="Normalised address.")
    timestamp: AwareDatetime = Field(description="When it happened (provider's event time).")
    data: CanonicalEvent | SuppressionCommand = Field(
        description="The canonical event (schemas/jsonschema/canonical_event.json), or for "
        "suppression.changed the suppression command (suppression_command.json)."
    )


class WebhookBody(WebhookPayload):
    """The JSON body POSTed to an endpoint (schemas/jsonschema/webhook_delivery.json).

    ``X-Webhook-Signature`` is the hex HMAC-SHA256 of these raw bytes with the endpoint's
    secret; the body carries ``id`` and ``sent_at``, so both are covered by it: dedupe on
    ``id`` and refuse a ``sent_at`` older than a few minutes (a replay).
    """

    sent_at: AwareDatetime = Field(description="When this attempt was sent (X-Webhook-Timestamp).")
    attempt: int = Field(ge=1, description="1 for the first attempt, counting re-sends.")


class DeliveryAttempt(BaseModel):
    model_config = _FROZEN
    at: AwareDatetime
    status_code: int | None = Field(default=None, description="None: no HTTP answer.")
    error: str | None = Field(default=None, description="timeout, connection_error, ...")
    duration_ms: int = Field(ge=0)


class DeliveryRecord(BaseModel):
    """One delivery of one event to one endpoint (value of the ``webhook_deliveries`` table).

    ``window_start`` begins the series of attempts that ``max_age`` bounds: the creation,
    or the latest re-send. ``history`` keeps the newest attempts (``attempts`` counts all).
    """

    model_config = _FROZEN
    schema_version: Literal[1] = 1
    delivery_id: str
    webhook_id: int
    type: WebhookEventType
    event_id: str
    address: str
    seq: int = Field(description="Arrival order on the worker that created it.")
    partition: int = Field(ge=0)
    status: DeliveryStatus
    created_at: AwareDatetime
    window_start: AwareDatetime
    attempts: int = Field(default=0, ge=0)
    next_attempt_at: AwareDatetime | None = None
    last_attempt_at: AwareDatetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    completed_at: AwareDatetime | None = None
    history: list[DeliveryAttempt] = Field(default_factory=list)
    payload: WebhookPayload

    def summary(self) -> dict[str, Any]:
        """The record without its payload (the delivery log's rows)."""
        return self.model_dump(mode="json", exclude={"payload"})


def seed_time(value: datetime) -> str:
    """A time as the seed writes it: UTC, to the second, with a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
