"""raw webhook -> canonical events. Pure: the same raw record always gives the same events
(same dedupe keys), which is what makes replays and rebuilds exact.

Each provider has a payload model in ``schemas/providers`` and a mapper in
``processors/mappers``; this module dispatches on the record's provider, normalises
addresses and builds the canonical events. Anything unparseable or unmappable raises
``NormaliseError`` with a reason (the caller sends the record to the DLQ). A record that
carries no delivery outcome (an SNS SubscriptionConfirmation, a SendGrid
group_resubscribe, Mandrill's empty test batch) gives an empty list. A record is mapped
whole or not at all: one bad event in a batch sends the whole record to the DLQ, so a
re-drive after a fix replays it exactly once.

Records of provider ``admin`` are an operator's manual actions (appended by the admin
API, never by ingest): ``normalise_manual_action`` turns one into a ``ManualAction``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ValidationError

from processors.addresses import NormaliseOptions, normalise_address
from processors.errors import NormaliseError, NormaliseReason
from processors.mappers import MAPPERS
from schemas.commands import ManualAction, ManualActionRequest
from schemas.events import CanonicalEvent, RawPosition
from schemas.raw import ADMIN_PROVIDER, MANUAL_ACTION_KIND, RawWebhook

__all__ = [
    "NormaliseError",
    "NormaliseOptions",
    "is_manual_action",
    "normalise",
    "normalise_address",
    "normalise_manual_action",
]


def normalise(raw: RawWebhook, options: NormaliseOptions) -> list[CanonicalEvent]:
    """All canonical events in one raw record (several for batches), in record order."""
    if raw.partition is None or raw.offset is None:
        raise ValueError("normalise needs a raw record read from Kafka (partition, offset)")
    mapper = MAPPERS.get(raw.provider)
    if mapper is None:
        raise NormaliseError("unknown_provider", raw.provider[:64])
    if raw.kind != "notification":  # SNS subscription (un)confirmations: nothing to map
        return []
    try:
        outcomes = mapper(raw, options)
    except ValidationError as exc:
        raise NormaliseError(_reason(exc), _detail(exc)) from None
    received_at = _utc(raw.received_at)
    return [
        CanonicalEvent(
            dedupe_key=o.dedupe_key,
            provider=raw.provider,
            source=raw.source,
            type=o.type,
            recipient=normalise_address(o.recipient, options),
            message_id=o.message_id or None,
            correlation_id=o.correlation_id,
            sending_domain=o.sending_domain,
            occurred_at=_utc(o.occurred_at) if o.occurred_at is not None else received_at,
            received_at=received_at,
            raw=RawPosition(partition=raw.partition, offset=raw.offset, index=i),
            verification=raw.verification,
            processing_status="normalised" if raw.redriven_from is None else "redriven",
            bounce=o.bounce,
            url=o.url,
        )
        for i, o in enumerate(outcomes)
    ]


def is_manual_action(raw: RawWebhook) -> bool:
    """True for a record the admin API appended (provider ``admin``)."""
    return raw.provider == ADMIN_PROVIDER


def normalise_manual_action(raw: RawWebhook, options: NormaliseOptions) -> ManualAction:
    """The operator's action in an admin record, at its raw position, address normalised."""
    if raw.partition is None or raw.offset is None:
        raise ValueError("normalise needs a raw record read from Kafka (partition, offset)")
    if not is_manual_action(raw) or raw.kind != MANUAL_ACTION_KIND:
        raise NormaliseError("invalid_payload", f"not a manual action (kind {raw.kind[:40]!r})")
    try:
        request = ManualActionRequest.model_validate_json(raw.body)
    except ValidationError as exc:
        raise NormaliseError(_reason(exc), _detail(exc)) from None
    return request.model_copy(update={"requested_at": _utc(request.requested_at)}).at(
        normalise_address(request.address, options),
        RawPosition(partition=raw.partition, offset=raw.offset),
    )


def _utc(at: datetime) -> datetime:
    # A provider timestamp without an offset is read as UTC (none of them mean local time).
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00
        raise NormaliseError("invalid_payload", "timestamp out of range") from None


def _reason(exc: ValidationError) -> NormaliseReason:
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        return "invalid_json"
    return "invalid_payload"


def _detail(exc: ValidationError) -> str:
    # Locations and messages only: input values may hold personal data.
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
