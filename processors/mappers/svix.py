"""Svix (generic Standard Webhooks) sources: ``email.*`` events are read as Resend's;
any other type is not a delivery outcome we can map (``unknown_event_type``)."""

from __future__ import annotations

from processors.addresses import NormaliseOptions
from processors.mappers.base import Outcome, unknown_type
from processors.mappers.resend import IGNORED, map_email
from schemas.providers.svix import SvixEvent
from schemas.raw import RawWebhook


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    event = SvixEvent.model_validate_json(raw.body)
    if not event.type.startswith("email."):
        raise unknown_type("svix", event.type)
    if event.type in IGNORED:
        return []
    at = event.timestamp or event.created_at
    return map_email("svix", raw, options, event.type, at, event.email_data())
