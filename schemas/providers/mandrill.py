"""Mandrill (Mailchimp Transactional) webhooks.

The body is a urlencoded form with one field, ``mandrill_events``: a JSON array of events
``{event, _id, ts, url, msg{_id, email, sender, state, bounce_description, diag,
metadata, ...}}``. Message events: send, deferral, hard_bounce, soft_bounce, open,
click, spam, unsub, reject. Sync events (``{type: blacklist|whitelist, action, reject}``)
have no ``event`` and no delivery outcome. Mandrill posts ``mandrill_events=[]`` when a
webhook is created.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

FORM_FIELD = "mandrill_events"


class MandrillMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    id: str | None = Field(default=None, alias="_id")
    email: str | None = None
    sender: str | None = None
    state: str | None = None
    bounce_description: str | None = None
    diag: str | None = None
    metadata: dict[str, Any] | None = None


class MandrillEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, allow_inf_nan=False)

    event: str | None = None
    # Sync events only: "blacklist" / "whitelist".
    type: str | None = None
    id: str | None = Field(default=None, alias="_id")
    ts: int | float | None = None  # unix seconds; an int in practice
    url: str | None = None
    msg: MandrillMessage | None = None


MandrillBatch: TypeAdapter[list[MandrillEvent]] = TypeAdapter(list[MandrillEvent])
