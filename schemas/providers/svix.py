"""A generic Standard Webhooks (Svix) source: ``{type, timestamp, data}``.

Svix carries whatever its sender defines. Events whose type is ``email.*`` are read as
Resend's (the one email sender that delivers through Svix here); any other type is not
an email delivery outcome we can map.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from schemas.providers.resend import ResendData


class SvixEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    # Standard Webhooks says "timestamp"; Resend says "created_at".
    timestamp: datetime | None = None
    created_at: datetime | None = None
    # Validated as ``ResendData`` only once the type says it is an email event.
    data: Any = None

    def email_data(self) -> ResendData:
        """``data`` read as an email event's (raises ``pydantic.ValidationError``)."""
        return ResendData.model_validate(self.data if self.data is not None else {})
