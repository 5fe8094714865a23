"""Value of ``webhooks.dlq``: why a record failed, and the record itself, so a downstream
reader can rebuild the raw webhook without our code, and an operator can re-drive it.

Rebuilding needs nothing but this record: the body is ``base64(raw.body_b64)``, byte for
byte what the provider sent, and ``raw.headers`` are the Kafka headers ingest wrote
(``mailpulse.source``, ``mailpulse.provider``, ``mailpulse.received_at``,
``mailpulse.verification``, ``mailpulse.kind``, optional ``mailpulse.delivery_id`` and
``mailpulse.redriven_from`` (a record re-driven from the DLQ), and
the provider's HTTP headers that matter as ``http.<lower-case name>``).
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.raw import RawWebhook


class DlqRaw(BaseModel):
    """The failed Kafka record, as it was."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    topic: str = Field(description="Topic the record was read from (e.g. webhooks.raw).")
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: str | None = Field(description="The record key, UTF-8 decoded; null if it had none.")
    headers: dict[str, str] = Field(description="Kafka record headers (mailpulse.*, http.*).")
    body_b64: str = Field(description="The record value, base64: the provider's raw body.")

    def raw_webhook(self) -> RawWebhook:
        """The raw webhook this record held (raises KeyError/ValueError when it is not one)."""
        body = base64.b64decode(self.body_b64, validate=True)
        headers = {name: value.encode() for name, value in self.headers.items()}
        return RawWebhook.from_kafka(body, headers, self.partition, self.offset)


class DlqRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = 1
    reason: str = Field(
        description="Short code: invalid_json, invalid_payload, unknown_event_type, "
        "unknown_provider, missing_recipient, invalid_recipient, ambiguous_recipient, "
        "invalid_raw_record, internal_error, ..."
    )
    error: str = Field(description="Human-readable detail (field names, never values).")
    stage: str = Field(description="Which agent failed: normalise, addresses, messages.")
    failed_at: AwareDatetime
    raw: DlqRaw
