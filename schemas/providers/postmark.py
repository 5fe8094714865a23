"""Postmark webhooks: one JSON object per event, discriminated by ``RecordType``.

* Delivery: ``MessageID``, ``Recipient``, ``DeliveredAt``, ``Details``.
* Bounce / SpamComplaint: ``ID`` (unique), ``Type`` (HardBounce, SoftBounce, Transient,
  SpamComplaint, ...) and ``TypeCode``, ``MessageID``, ``Email``, ``From``, ``BouncedAt``,
  ``Description``, ``Details``.
* Open / Click: ``MessageID``, ``Recipient``, ``ReceivedAt``; Click ``OriginalLink``.
* SubscriptionChange: ``MessageID`` (null for manual changes), ``Recipient``,
  ``ChangedAt``, ``SuppressSending`` (true: suppressed, false: reactivated),
  ``SuppressionReason`` (HardBounce, SpamComplaint, ManualSuppression), ``Origin``.

Every type carries ``Metadata`` (our key/values, echoed) and ``MessageStream``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_pascal


class PostmarkEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_pascal, coerce_numbers_to_str=True)

    record_type: str
    id: str | None = Field(default=None, alias="ID")
    message_id: str | None = Field(default=None, alias="MessageID")
    # Bounce and SpamComplaint say Email; the other record types say Recipient.
    email: str | None = None
    recipient: str | None = None
    from_: str | None = Field(default=None, alias="From")
    type: str | None = None
    type_code: str | None = None
    description: str | None = None
    details: str | None = None
    bounced_at: datetime | None = None
    delivered_at: datetime | None = None
    received_at: datetime | None = None
    changed_at: datetime | None = None
    original_link: str | None = None
    suppress_sending: bool | None = None
    suppression_reason: str | None = None
    metadata: dict[str, Any] | None = None

    def occurred_at(self) -> datetime | None:
        return self.bounced_at or self.delivered_at or self.received_at or self.changed_at
