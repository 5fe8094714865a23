"""NexusProMail webhook (seeds 000/002): ``{id, type, created_at, data{...}}``.

Types: delivered, opened, clicked, bounced.hard, bounced.soft, complained, unsubscribed.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class NexusData(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    message_id: str
    email: str | None = None
    timestamp: datetime | None = None
    bounce_code: str | None = None
    bounce_reason: str | None = None
    # Not in the seeds, kept when present: the clicked link and our echoed metadata.
    url: str | None = None
    correlation_id: str | None = None


class NexusEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    type: str
    created_at: datetime
    data: NexusData
