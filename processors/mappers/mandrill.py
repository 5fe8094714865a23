"""Mandrill: a urlencoded form whose ``mandrill_events`` field is a JSON array of events.

Events have no event id of their own (``_id`` is the message's), so the key is
``mandrill:<_id>:<event>:<ts>``; sync events (rejection-list changes) are skipped.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from processors.addresses import NormaliseOptions, domain_of
from processors.errors import NormaliseError
from processors.mappers.base import (
    Outcome,
    body_hash,
    correlation,
    from_unix,
    require_recipient,
    unknown_type,
)
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.providers.mandrill import FORM_FIELD, MandrillBatch, MandrillEvent
from schemas.raw import RawWebhook

TYPES: dict[str, EventType] = {
    "send": "sent",
    "deferral": "deferred",
    "hard_bounce": "bounced.hard",
    "soft_bounce": "bounced.soft",
    "open": "opened",
    "click": "clicked",
    "spam": "complained",
    "unsub": "unsubscribed",
    "reject": "dropped",
}
WITH_DETAIL = frozenset({"hard_bounce", "soft_bounce", "deferral", "reject"})
SYNC_TYPES = frozenset({"blacklist", "whitelist"})
MAX_FIELDS = 1000  # as ingest's verifier


def events_field(body: bytes) -> str:
    """The ``mandrill_events`` form field (the last one, as Mandrill's reference code)."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
        )
    except ValueError:  # UnicodeDecodeError is one, so is "too many fields"
        raise NormaliseError("invalid_payload", "not a urlencoded form") from None
    found = [value for name, value in pairs if name == FORM_FIELD]
    if not found:
        raise NormaliseError("invalid_payload", f"form field {FORM_FIELD}: missing")
    return found[-1]


def _outcome(e: MandrillEvent, name: str, key: str) -> Outcome:
    kind = TYPES.get(name)
    if kind is None:
        raise unknown_type("mandrill", name)
    msg = e.msg
    if msg is None:
        raise NormaliseError("invalid_payload", "msg: missing")
    bounce = None
    if name in WITH_DETAIL and (msg.bounce_description or msg.diag):
        bounce = BounceDetail(code=msg.bounce_description, reason=msg.diag, provider_class=name)
    return Outcome(
        dedupe_key=key,
        type=kind,
        recipient=require_recipient(msg.email, "msg.email"),
        message_id=e.id or msg.id,
        occurred_at=from_unix(e.ts) if e.ts is not None else None,
        bounce=bounce,
        url=e.url if kind == "clicked" else None,
        correlation_id=correlation(msg.metadata),
        sending_domain=domain_of(msg.sender),
    )


def map_raw(raw: RawWebhook, options: NormaliseOptions) -> list[Outcome]:
    events = MandrillBatch.validate_json(events_field(raw.body))
    outcomes = []
    for i, e in enumerate(events):
        if e.event is None:
            if e.type in SYNC_TYPES:
                continue
            raise NormaliseError("invalid_payload", f"[{i}].event: missing")
        message = e.id or (e.msg.id if e.msg else None)
        if message and e.ts is not None:
            key = f"mandrill:{message}:{e.event}:{e.ts}"
        else:
            key = f"{body_hash(raw)}:{i}"
        outcomes.append(_outcome(e, e.event, key))
    return outcomes
