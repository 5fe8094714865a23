"""The generic platform's inbound webhook (seed 003): ``{type, email_id, recipient, timestamp}``.

Types ``email.delivered``, ``email.bounced``, ``email.open``, ``email.click``,
``email.bounce``, ``email.unsubscribe``. It carries no event id (dedupe is by a hash of
the raw body) and does not say whether a bounce is hard or soft.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class GenericEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    email_id: str
    # Optional in seed 003; the mapper turns its absence into ``missing_recipient``.
    recipient: str | None = None
    # "ISO 8601": one without an offset is read as UTC.
    timestamp: datetime | None = None
