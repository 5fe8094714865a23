"""SendGrid Event Webhook: the body is a JSON array of events.

Each event: ``sg_event_id`` (unique per event), ``sg_message_id`` (``<X-Message-Id>.
<filter/recv suffix>``), ``event`` (processed, delivered, deferred, bounce, dropped, open,
click, spamreport, unsubscribe, group_unsubscribe, group_resubscribe), ``email``, unix
``timestamp``; bounces say ``type`` "bounce" (hard) or "blocked" (soft) with ``status``
and ``reason``; clicks carry ``url``. Custom args (``custom_args``/``unique_args`` at send
time) come back as top-level keys: ours is ``correlation_id``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, TypeAdapter


class SendGridEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, allow_inf_nan=False)

    event: str
    email: str | None = None
    timestamp: float
    sg_event_id: str | None = None
    sg_message_id: str | None = None
    type: str | None = None
    bounce_classification: str | None = None
    reason: str | None = None
    response: str | None = None  # deferred: the receiving server's reply
    status: str | None = None
    url: str | None = None
    correlation_id: str | None = None


SendGridBatch: TypeAdapter[list[SendGridEvent]] = TypeAdapter(list[SendGridEvent])
