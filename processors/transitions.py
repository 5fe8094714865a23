"""Pure state transitions: ``(state, input) -> (state, commands)``. No I/O, no clock.

Idempotence (DESIGN.md §3, processors/dedupe.py). An input is skipped (state returned
equal, no commands) when its raw ``(offset, index)`` is at or below the highest applied
for its raw partition (replay after an offset reset), or when its dedupe key is in the
owner's dedupe index (``seen``: a provider retry at a new position). Keys are remembered
by *event* time, while ``occurred_at >= newest occurred_at applied - retention``; a key
already past that horizon when it arrives is forgotten at once, so a retry of it counts
again (the price of a bounded window). Manual actions share both layers: their position
is in ``webhooks.raw`` too. The caller writes the index (``dedupe.index_change``).

Order-insensitivity. Rules are decided on event time and collections kept sorted by
``(event time, key)``, so one set of inputs gives an equal state in any arrival order:

* Soft bounces: the address keeps those later than its latest delivery. When at least
  ``soft_bounce_threshold`` are also later than the scope's latest manual unsuppress,
  ``soft_bounce_scope`` is suppressed (``soft_bounce_threshold``), caused by the bounce
  that reached the threshold in event order. A delivery later in event time than those
  bounces lifts it (the definition no longer holds); an older one arriving late does not.
* Sticky causes: ``Policy.suppress_on`` events and manual suppresses hold until a manual
  unsuppress of their scope with a *later* event time (a tie goes to the unsuppress). So
  a scope is suppressed iff its latest cause is later than its latest unsuppress, and an
  unsuppress also covers older causes that arrive after it.
* Several causes for one scope: the earliest by ``(event time, key)`` is reported, so a
  late-arriving older cause can change the reason (a change: a command).
* Scopes are independent: ``all`` does not also mark ``marketing`` (senders check both).
* Bounds keep the *newest* soft bounces and causes: the suppressed-or-not decision stays
  exact; past the bound the reported cause/since can move forward.

Commands: one per scope whose (suppressed?, reason) changed, carrying the full state. A
suppress names its cause, issued at the cause's event time; a lift names the input that
lifted it (a delivery or a manual unsuppress), at its time. The id hashes address and
change: the same across replays and rebuilds. Cause/since changes alone emit nothing
(the table is authoritative for them). A lifted cause never holds again, so a suppress id
repeats only while its scope stayed suppressed throughout (reason A, an older cause B
arrives, B is lifted, A again): a consumer dropping the repeat still suppresses.

Message status (``STATUS_PRECEDENCE``): the highest-ranked type seen wins, whatever the
order; an open or click without a delivery implies it (``delivered_implied``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from processors.dedupe import SeenLookup, is_replay, is_retry, remember
from processors.policy import REASONS, SOFT_BOUNCE_REASON, Policy
from schemas.commands import ManualAction, SuppressionChange, SuppressionCommand
from schemas.common import EventType, SuppressionScope
from schemas.events import CanonicalEvent, RawPosition
from schemas.state import (
    AddressState,
    Cause,
    Dedupe,
    HistoryEntry,
    Mark,
    MessageState,
    ScopeSuppression,
)

SCOPES: tuple[SuppressionScope, ...] = ("all", "marketing")
DELIVERY_LIFT_REASON = "delivered_after_soft_bounces"
STATUS_PRECEDENCE: dict[EventType, int] = {
    # Higher wins. The positive path ranks by how far the mail got (a soft bounce or a
    # deferral followed by a delivery is delivered). Negative outcomes outrank it because
    # they are what a sender acts on: an unsubscribe usually comes with a click, a
    # complaint or an asynchronous hard bounce can follow a "delivered" (accepted by the
    # receiving server), and a drop means the provider never sent the mail at all.
    "sent": 0,
    "deferred": 1,
    "bounced.soft": 2,
    "delivered": 3,
    "opened": 4,
    "clicked": 5,
    "unsubscribed": 6,
    "complained": 7,
    "dropped": 8,
    "bounced.hard": 9,
}
_M = TypeVar("_M", bound=Mark)


# -- idempotence ------------------------------------------------------------------------


def _already_applied(
    dedupe: Dedupe, key: str, at: datetime, raw: RawPosition, policy: Policy, seen: SeenLookup
) -> bool:
    return is_replay(dedupe, raw) or is_retry(dedupe, key, at, policy, seen)


def _latest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


def _newest(marks: Iterable[_M], keep: int) -> tuple[_M, ...]:
    """Unique by key, oldest first, only the newest ``keep``.

    Keeping a suffix in event order is what makes the bound order-insensitive: every
    filter applied later ("later than the last delivery/unsuppress") keeps suffixes too.
    """
    unique = {m.key: m for m in marks}
    return tuple(sorted(unique.values(), key=lambda m: (m.at, m.key)))[-keep:]


# -- addresses --------------------------------------------------------------------------


def _causes_in_force(
    causes: dict[SuppressionScope, tuple[Cause, ...]],
    unsuppressed_at: dict[SuppressionScope, datetime],
    policy: Policy,
) -> dict[SuppressionScope, tuple[Cause, ...]]:
    """Drop causes lifted by a later unsuppress (lifts are final) and empty scopes."""
    result: dict[SuppressionScope, tuple[Cause, ...]] = {}
    for scope in SCOPES:
        lifted = unsuppressed_at.get(scope)
        kept = _newest(
            (c for c in causes.get(scope, ()) if lifted is None or c.at > lifted),
            policy.max_causes,
        )
        if kept:
            result[scope] = kept
    return result


def _soft_trigger(state: AddressState, policy: Policy) -> Cause | None:
    lifted = state.unsuppressed_at.get(policy.soft_bounce_scope)
    counted = [m for m in state.soft_bounces if lifted is None or m.at > lifted]
    if len(counted) < policy.soft_bounce_threshold:
        return None
    trigger = counted[policy.soft_bounce_threshold - 1]
    return Cause(at=trigger.at, key=trigger.key, reason=SOFT_BOUNCE_REASON)


def _effective(
    state: AddressState, policy: Policy
) -> dict[SuppressionScope, ScopeSuppression | None]:
    soft = _soft_trigger(state, policy)
    result: dict[SuppressionScope, ScopeSuppression | None] = {}
    for scope in SCOPES:
        candidates = list(state.causes.get(scope, ()))
        if soft is not None and scope == policy.soft_bounce_scope:
            candidates.append(soft)
        first = min(candidates, key=lambda c: (c.at, c.key), default=None)
        result[scope] = (
            None
            if first is None
            else ScopeSuppression(reason=first.reason, cause=first.key, since=first.at)
        )
    return result


def _reason(suppression: ScopeSuppression | None) -> str | None:
    return None if suppression is None else suppression.reason


def _commands(
    before: AddressState, after: AddressState, lifter: str, at: datetime, lift_reason: str
) -> list[SuppressionCommand]:
    commands = []
    for scope in SCOPES:
        old, new = before.suppression.get(scope), after.suppression.get(scope)
        if _reason(old) == _reason(new):
            continue
        if new is not None:
            change = SuppressionChange(
                action="suppress", scope=scope, reason=new.reason, cause=new.cause
            )
            issued = new.since
        else:
            change = SuppressionChange(
                action="unsuppress", scope=scope, reason=lift_reason, cause=lifter
            )
            issued = at
        commands.append(
            SuppressionCommand(
                command_id=SuppressionCommand.make_id(after.address, change),
                address=after.address,
                suppression=after.suppression,
                change=change,
                issued_at=issued,
            )
        )
    return commands


def _finish(
    current: AddressState,
    update: dict[str, Any],
    policy: Policy,
    *,
    key: str,
    at: datetime,
    lift_reason: str,
) -> tuple[AddressState, list[SuppressionCommand]]:
    draft = current.model_copy(update=update)
    causes = _causes_in_force(draft.causes, draft.unsuppressed_at, policy)
    draft = draft.model_copy(update={"causes": causes})
    new = draft.model_copy(update={"suppression": _effective(draft, policy)})
    return new, _commands(current, new, key, at, lift_reason)


def apply_address_event(
    state: AddressState | None, event: CanonicalEvent, policy: Policy, seen: SeenLookup
) -> tuple[AddressState, list[SuppressionCommand]]:
    """Fold one canonical event into an address's state; return the commands it causes."""
    current = AddressState(address=event.recipient) if state is None else state
    key, at, kind = event.dedupe_key, event.occurred_at, event.type
    if _already_applied(current.dedupe, key, at, event.raw, policy, seen):
        return current, []
    counts = {**current.counts, kind: current.counts.get(kind, 0) + 1}
    update: dict[str, Any] = {
        "counts": dict(sorted(counts.items())),
        "dedupe": remember(current.dedupe, at, event.raw, policy),
    }
    last_delivered = current.last_delivered_at
    soft: Iterable[Mark] = current.soft_bounces
    if kind == "delivered":
        last_delivered = update["last_delivered_at"] = _latest(last_delivered, at)
    elif kind == "opened":
        update["last_opened_at"] = _latest(current.last_opened_at, at)
    elif kind == "clicked":
        update["last_clicked_at"] = _latest(current.last_clicked_at, at)
    elif kind == "bounced.soft":
        soft = (*soft, Mark(at=at, key=key))
    update["soft_bounces"] = _newest(
        (m for m in soft if last_delivered is None or m.at > last_delivered),
        policy.soft_bounce_marks,
    )
    scope = policy.suppress_on.get(kind)
    if scope is not None:
        cause = Cause(at=at, key=key, reason=REASONS[kind])
        update["causes"] = {**current.causes, scope: (*current.causes.get(scope, ()), cause)}
    # Only a delivery can lift a suppression here (it ends a soft-bounce run).
    return _finish(current, update, policy, key=key, at=at, lift_reason=DELIVERY_LIFT_REASON)


def manual_reason(action: ManualAction) -> str:
    """``manual``, or ``manual:<operator's text>`` when the operator gave one."""
    return f"manual:{action.reason}" if action.reason else "manual"


def apply_manual_action(
    state: AddressState | None, action: ManualAction, policy: Policy, seen: SeenLookup
) -> tuple[AddressState, list[SuppressionCommand]]:
    """Fold an operator's suppress/unsuppress in, exactly like a provider event.

    ``requested_at`` is its event time: a manual suppress is a sticky cause; a manual
    unsuppress lifts every cause of its scope up to that time (including soft bounces,
    which count again only after it) but none later.
    """
    current = AddressState(address=action.address) if state is None else state
    key, at = action.action_id, action.requested_at
    if _already_applied(current.dedupe, key, at, action.raw, policy, seen):
        return current, []
    update: dict[str, Any] = {"dedupe": remember(current.dedupe, at, action.raw, policy)}
    if action.action == "suppress":
        cause = Cause(at=at, key=key, reason=manual_reason(action))
        causes = current.causes
        update["causes"] = {**causes, action.scope: (*causes.get(action.scope, ()), cause)}
    else:
        lifted = {**current.unsuppressed_at}
        lifted[action.scope] = _latest(lifted.get(action.scope), at)
        update["unsuppressed_at"] = dict(sorted(lifted.items()))
    return _finish(current, update, policy, key=key, at=at, lift_reason=manual_reason(action))


# -- messages ---------------------------------------------------------------------------


def _history(entries: Iterable[HistoryEntry], limit: int) -> tuple[HistoryEntry, ...]:
    """Unique by dedupe key, in event order, the latest ``limit`` kept."""
    unique: dict[str, HistoryEntry] = {}
    for e in sorted(entries, key=lambda e: (e.raw.partition, e.raw.offset, e.raw.index)):
        unique.setdefault(e.dedupe_key, e)  # a forgotten key retried: keep the first copy
    ordered = sorted(unique.values(), key=lambda e: (e.occurred_at, e.dedupe_key))
    return tuple(ordered[-limit:])


def _first_recipients(
    state: MessageState | None, recipient: str, limit: int
) -> tuple[tuple[str, ...], bool]:
    """The ``limit`` smallest recipients, and whether there are more: a set in any order."""
    previous = state.recipients if state else ()
    truncated = state.recipients_truncated if state else False
    if recipient in previous:
        return previous, truncated
    merged = sorted({*previous, recipient})
    return tuple(merged[:limit]), truncated or len(merged) > limit


def apply_message_event(
    state: MessageState | None, event: CanonicalEvent, policy: Policy, seen: SeenLookup
) -> MessageState:
    """Fold one canonical event into its message's status and bounded history."""
    if event.message_id is None:
        raise ValueError("message events need a message_id")
    at, kind = event.occurred_at, event.type
    if state is not None and _already_applied(
        state.dedupe, event.dedupe_key, at, event.raw, policy, seen
    ):
        return state
    first_seen = dict(state.first_seen) if state else {}
    first_seen[kind] = min(at, first_seen.get(kind, at))
    status = max(first_seen, key=STATUS_PRECEDENCE.__getitem__)
    entry = HistoryEntry(
        type=kind,
        occurred_at=at,
        dedupe_key=event.dedupe_key,
        recipient=event.recipient,
        raw=event.raw,
    )
    previous = state.history if state else ()
    recipients, truncated = _first_recipients(
        state, event.recipient, policy.message_recipients_limit
    )
    dedupe = remember(state.dedupe if state else Dedupe(), at, event.raw, policy)
    return MessageState(
        message_id=event.message_id,
        recipients=recipients,
        recipients_truncated=truncated,
        status=status,
        status_at=first_seen[status],
        delivered_implied="delivered" not in first_seen
        and not {"opened", "clicked"}.isdisjoint(first_seen),
        first_seen=dict(sorted(first_seen.items())),
        event_count=(state.event_count if state else 0) + 1,
        history=_history((*previous, entry), policy.message_history_limit),
        dedupe=dedupe,
    )
