"""The `webhooks.raw` record: the provider's body byte for byte, with metadata in headers.

The Kafka record value *is* the raw request body, so a downstream reader (or an auditor)
gets exactly what the provider sent. Everything ingest learnt about the request travels
as Kafka record headers named ``mailpulse.*``; the provider headers that matter for
parsing travel as ``http.<lower-case-name>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

H_SOURCE = "mailpulse.source"
H_PROVIDER = "mailpulse.provider"
H_RECEIVED_AT = "mailpulse.received_at"
H_VERIFICATION = "mailpulse.verification"
H_DELIVERY_ID = "mailpulse.delivery_id"
H_KIND = "mailpulse.kind"
# Set by ``mailpulse redrive`` on a record re-appended from the DLQ:
# "<dlq topic>:<partition>:<offset>" of the DLQ record it came from.
H_REDRIVEN_FROM = "mailpulse.redriven_from"
HTTP_PREFIX = "http."

# An operator's manual action, appended by the processors' admin API (never by ingest: a
# provider kind comes from ingest's own source settings, and "admin" is not one). The body
# is a ``schemas.commands.ManualActionRequest`` as JSON.
ADMIN_PROVIDER = "admin"
ADMIN_SOURCE = "admin"
ADMIN_VERIFICATION = "admin_token"
MANUAL_ACTION_KIND = "manual_action"


@dataclass(frozen=True, slots=True)
class RawWebhook:
    """One verified webhook request as ingest appended it to `webhooks.raw`."""

    body: bytes
    source: str
    provider: str
    received_at: datetime
    verification: str
    delivery_id: str | None = None
    # "notification" for events; "subscription_confirmation" etc. for SNS control messages.
    kind: str = "notification"
    http_headers: Mapping[str, str] = field(default_factory=dict)
    # Where the record sits in `webhooks.raw`; set when read back, None before append.
    partition: int | None = None
    offset: int | None = None
    # The DLQ record this one was re-driven from (``H_REDRIVEN_FROM``), None if original.
    redriven_from: str | None = None

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """The Kafka record headers that carry this record's metadata."""
        headers = [
            (H_SOURCE, self.source.encode()),
            (H_PROVIDER, self.provider.encode()),
            (H_RECEIVED_AT, self.received_at.isoformat().encode()),
            (H_VERIFICATION, self.verification.encode()),
            (H_KIND, self.kind.encode()),
        ]
        if self.delivery_id is not None:
            headers.append((H_DELIVERY_ID, self.delivery_id.encode()))
        if self.redriven_from is not None:
            headers.append((H_REDRIVEN_FROM, self.redriven_from.encode()))
        headers.extend((HTTP_PREFIX + k.lower(), v.encode()) for k, v in self.http_headers.items())
        return headers

    @classmethod
    def from_kafka(
        cls,
        value: bytes,
        headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
        partition: int | None = None,
        offset: int | None = None,
    ) -> RawWebhook:
        """Rebuild the record from a Kafka value and headers; raises KeyError if one is missing."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        meta: dict[str, str] = {}
        http: dict[str, str] = {}
        for name, raw in items:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            if name.startswith(HTTP_PREFIX):
                http[name[len(HTTP_PREFIX) :]] = text
            else:
                meta[name] = text
        received = datetime.fromisoformat(meta[H_RECEIVED_AT])
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        return cls(
            body=value,
            source=meta[H_SOURCE],
            provider=meta[H_PROVIDER],
            received_at=received,
            verification=meta[H_VERIFICATION],
            delivery_id=meta.get(H_DELIVERY_ID),
            kind=meta.get(H_KIND, "notification"),
            http_headers=http,
            partition=partition,
            offset=offset,
            redriven_from=meta.get(H_REDRIVEN_FROM),
        )
