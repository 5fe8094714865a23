"""The canonical event: one delivery outcome for one recipient, whatever the provider.

Carries what seed 004 asks to keep: provider message id, our correlation id when the
provider echoes one, event type, provider and receipt timestamps, recipient, sending
domain, the raw record's position, verification result, processing status and the
dedupe key. Value of `email.events` (key: address) and `message.events` (key: message id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel

from schemas.common import EventType


class RawPosition(BaseModel):
    """Where the event came from in `webhooks.raw`.

    ``index`` is the event's place inside its raw record (batches such as SendGrid arrays
    yield several events from one record); ``(offset, index)`` orders events within a
    raw partition and is what replay dedupe compares.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    index: int = Field(default=0, ge=0)


class BounceDetail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str | None = None
    reason: str | None = None
    # What the provider called it (e.g. "Permanent", "blocked", "hard_bounce"), kept for audit.
    provider_class: str | None = None
    # True when the provider did not say hard or soft and policy chose for it.
    classified_by_policy: bool = False


ProcessingStatus = Literal["normalised", "redriven", "manual"]


class CanonicalEvent(BaseModel):
    """One delivery outcome for one recipient, normalised from any provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    dedupe_key: str = Field(
        description="Provider event id (prefixed by provider), or a body hash where the "
        "provider has none; one raw record naming several recipients yields one key each."
    )
    provider: str
    source: str
    type: EventType
    recipient: str = Field(description="Normalised address (the key of email.events).")
    message_id: str | None = Field(default=None, description="Provider message id.")
    correlation_id: str | None = Field(
        default=None, description="Our own id when the provider echoes it (metadata/tags)."
    )
    sending_domain: str | None = None
    occurred_at: AwareDatetime = Field(description="When the provider says it happened.")
    received_at: AwareDatetime = Field(description="When ingest received the webhook.")
    raw: RawPosition
    verification: str = Field(description="How ingest verified the request.")
    processing_status: ProcessingStatus = "normalised"
    bounce: BounceDetail | None = None
    url: str | None = Field(default=None, description="Clicked link, for clicked events.")

    def sort_key(self) -> tuple[datetime, str]:
        """Deterministic event-time order: provider time, then dedupe key as tie-break."""
        return (self.occurred_at, self.dedupe_key)


class CanonicalEventBatch(RootModel[list[CanonicalEvent]]):
    """Value of an ``email.events`` or ``message.events`` record whose header
    ``mailpulse.value_type`` is ``event_batch``: canonical events of one partition of that
    topic (each keyed there by its recipient, or by its message id), in the order of their
    raw records. The normaliser sends a partition's events of a few milliseconds as one
    record (processors/hops.py)."""
