"""Per-address and per-message state as stored in the tables (JSON, one record per key).

Records are rewritten on every applied event, so every collection in them is bounded
whatever the key's traffic (the dedupe keys, which grow with history, live under keys of
their own: processors/dedupe.py; a message keeps a bounded set of recipients), and every
collection is kept in a canonical order (sorted by event time, then key) so that two
records built from the same set of events compare equal whatever the arrival order.
The rules that fill them live in ``processors/transitions.py``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.common import EventType, SuppressionScope
from schemas.events import RawPosition

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Mark(BaseModel):
    """One event that matters for a rule: its event time and dedupe key."""

    model_config = _FROZEN
    at: AwareDatetime
    key: str


class Cause(Mark):
    """An event (or manual action) that suppresses a scope until a later unsuppress."""

    reason: str


class ScopeSuppression(BaseModel):
    """Why and since when one scope of an address is suppressed."""

    model_config = _FROZEN
    reason: str
    cause: str  # dedupe key of the event (or id of the manual action) that caused it
    since: AwareDatetime  # event time of the cause


class Dedupe(BaseModel):
    """The idempotence fields of a record (DESIGN.md §3); see processors/dedupe.py.

    ``positions``: raw partition (as text, for JSON) -> highest applied ``(offset,
    index)``; anything at or below it is a replay. ``newest_at``: the newest event time
    applied, which anchors the dedupe window. ``buckets``: the event-time hours whose
    dedupe keys are still remembered, in the table's dedupe index (not in this record).
    """

    model_config = _FROZEN
    positions: dict[str, tuple[int, int]] = {}
    newest_at: AwareDatetime | None = None
    buckets: tuple[int, ...] = ()


def _no_suppression() -> dict[SuppressionScope, ScopeSuppression | None]:
    return {"all": None, "marketing": None}


class AddressState(BaseModel):
    """Value of the ``addresses`` table (key: normalised address)."""

    model_config = _FROZEN

    schema_version: Literal[2] = 2
    address: str
    counts: dict[EventType, int] = {}
    last_delivered_at: AwareDatetime | None = None
    last_opened_at: AwareDatetime | None = None
    last_clicked_at: AwareDatetime | None = None
    # Soft bounces later than the last delivery, oldest first; the newest
    # ``Policy.soft_bounce_marks`` are kept.
    soft_bounces: tuple[Mark, ...] = ()
    # Per scope, the sticky causes still in force (later than the scope's latest manual
    # unsuppress), oldest first, the newest ``Policy.max_causes`` kept. No empty entries.
    causes: dict[SuppressionScope, tuple[Cause, ...]] = {}
    # Per scope, event time of the latest manual unsuppress.
    unsuppressed_at: dict[SuppressionScope, AwareDatetime] = {}
    # Derived from the fields above: the current suppression of each scope (both keys).
    suppression: dict[SuppressionScope, ScopeSuppression | None] = Field(
        default_factory=_no_suppression
    )
    dedupe: Dedupe = Dedupe()


class HistoryEntry(BaseModel):
    """One event of a message's history."""

    model_config = _FROZEN
    type: EventType
    occurred_at: AwareDatetime
    dedupe_key: str
    recipient: str
    raw: RawPosition


class MessageState(BaseModel):
    """Value of the ``messages`` table (key: provider message id)."""

    model_config = _FROZEN

    schema_version: Literal[2] = 2
    message_id: str
    # The first ``Policy.message_recipients_limit`` recipients in address order (a set,
    # so any arrival order gives the same list); ``recipients_truncated`` says there are
    # more. One message id can go to a whole list: the record must not grow with it.
    recipients: tuple[str, ...] = ()
    recipients_truncated: bool = False
    status: EventType
    status_at: AwareDatetime  # first time the current status was seen (event time)
    # An open or click seen without any delivery implies the delivery happened.
    delivered_implied: bool = False
    first_seen: dict[EventType, AwareDatetime] = {}
    event_count: int = 0
    # Latest events by event time, oldest first, unique by dedupe key, bounded by
    # ``Policy.message_history_limit``.
    history: tuple[HistoryEntry, ...] = ()
    dedupe: Dedupe = Dedupe()
