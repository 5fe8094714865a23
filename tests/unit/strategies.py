"""Hypothesis strategies, builders and runners shared by the transition tests.

Raw positions follow Kafka: within one raw partition inputs arrive in offset order, while
partitions interleave arbitrarily. ``arrived`` numbers inputs in their arrival order;
``positioned`` fixes positions once and ``interleaving`` draws an arrival order that
respects them, which is exactly the freedom a real consumer has.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

from hypothesis import strategies as st

from processors.policy import DEFAULT_SUPPRESS_ON, Policy
from processors.transitions import apply_address_event, apply_manual_action, apply_message_event
from schemas.commands import ManualAction, SuppressionCommand
from schemas.common import EventType, SuppressionScope
from schemas.events import CanonicalEvent, RawPosition
from schemas.state import AddressState, MessageState

T0 = datetime(2026, 5, 13, 10, 0, tzinfo=UTC)
ADDRESS = "someone@example.com"
Input = CanonicalEvent | ManualAction
_I = TypeVar("_I", CanonicalEvent, ManualAction, Input)


def event(
    kind: EventType,
    minute: float,
    *,
    key: str | None = None,
    address: str = ADDRESS,
    message: str = "msg_1",
    partition: int = 0,
    offset: int = 0,
    index: int = 0,
    tz: timezone = UTC,
) -> CanonicalEvent:
    """A canonical event ``minute`` minutes after T0."""
    return CanonicalEvent(
        dedupe_key=key or f"test:{kind}:{minute}",
        provider="nexuspromail",
        source="nexuspromail",
        type=kind,
        recipient=address,
        message_id=message,
        occurred_at=(T0 + timedelta(minutes=minute)).astimezone(tz),
        received_at=T0 + timedelta(days=1),
        raw=RawPosition(partition=partition, offset=offset, index=index),
        verification="test",
    )


def manual(
    action: str,
    minute: float,
    *,
    scope: SuppressionScope = "all",
    key: str | None = None,
    reason: str = "",
    partition: int = 0,
    offset: int = 0,
) -> ManualAction:
    """An operator's suppress/unsuppress requested ``minute`` minutes after T0."""
    return ManualAction.model_validate(
        {
            "action_id": key or f"admin:{action}:{scope}:{minute}",
            "action": action,
            "address": ADDRESS,
            "scope": scope,
            "reason": reason,
            "requested_at": T0 + timedelta(minutes=minute),
            "raw": RawPosition(partition=partition, offset=offset),
        }
    )


def arrived(items: Sequence[_I], partitions: int = 1) -> list[_I]:
    """Give inputs raw positions in arrival order, as Kafka does within a partition."""
    next_offset = [0] * partitions
    out = []
    for i, item in enumerate(items):
        p = i % partitions
        out.append(item.model_copy(update={"raw": RawPosition(partition=p, offset=next_offset[p])}))
        next_offset[p] += 1
    return out


def run(
    inputs: Iterable[Input],
    policy: Policy,
    state: AddressState | None = None,
    *,
    via_json: bool = False,
) -> tuple[AddressState, list[SuppressionCommand]]:
    """Apply inputs in order; ``via_json`` stores and reloads the state between steps."""
    commands: list[SuppressionCommand] = []
    for item in inputs:
        if via_json and state is not None:
            state = AddressState.model_validate_json(state.model_dump_json())
        if isinstance(item, ManualAction):
            state, new = apply_manual_action(state, item, policy)
        else:
            state, new = apply_address_event(state, item, policy)
        commands += new
    assert state is not None
    return state, commands


def run_messages(
    inputs: Iterable[Input], policy: Policy, *, via_json: bool = False
) -> dict[str, MessageState]:
    """Apply the message events among ``inputs``; message id -> state."""
    states: dict[str, MessageState] = {}
    for item in inputs:
        if isinstance(item, ManualAction) or item.message_id is None:
            continue
        before = states.get(item.message_id)
        if via_json and before is not None:
            before = MessageState.model_validate_json(before.model_dump_json())
        states[item.message_id] = apply_message_event(before, item, policy)
    return states


def reasons(state: AddressState | None) -> dict[str, str]:
    """Suppressed scopes and their reason."""
    if state is None:
        return {}
    return {s: v.reason for s, v in state.suppression.items() if v is not None}


KINDS: list[EventType] = [
    "delivered",
    "bounced.soft",
    "bounced.hard",
    "complained",
    "unsubscribed",
    "opened",
    "clicked",
    "deferred",
    "sent",
    "dropped",
]
# Soft bounces and deliveries drive the subtlest rule: make them common.
_WEIGHTED_KINDS: list[EventType] = ["bounced.soft", "delivered", *KINDS, "bounced.soft"]
_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]


@st.composite
def event_sets(draw: st.DrawFn, max_size: int = 25) -> list[CanonicalEvent]:
    """Distinct events (unique dedupe keys) for one address and a few messages.

    Times come from a narrow or a wide span (narrow spans give ties in event time) and
    from several UTC offsets (only the instant may matter).
    """
    n = draw(st.integers(min_value=1, max_value=max_size))
    span = draw(st.sampled_from([3, 60, 600]))
    return [
        event(
            draw(st.sampled_from(_WEIGHTED_KINDS)),
            draw(st.integers(min_value=0, max_value=span)),
            key=f"evt-{i:02d}",
            message=draw(st.sampled_from(["m1", "m2", "m3"])),
            tz=draw(st.sampled_from(_ZONES)),
        )
        for i in range(n)
    ]


@st.composite
def input_sets(draw: st.DrawFn, max_size: int = 25) -> list[Input]:
    """Distinct events plus a few manual suppress/unsuppress actions, in no given order."""
    events: list[Input] = list(draw(event_sets(max_size)))
    n = draw(st.integers(min_value=0, max_value=4))
    actions = [
        manual(
            draw(st.sampled_from(["suppress", "unsuppress"])),
            draw(st.integers(min_value=0, max_value=600)),
            scope=draw(st.sampled_from(["all", "marketing"])),
            key=f"adm-{i}",
            reason=draw(st.sampled_from(["", "support ticket"])),
        )
        for i in range(n)
    ]
    return draw(st.permutations([*events, *actions]))


@st.composite
def positioned(draw: st.DrawFn, items: Sequence[_I], max_partitions: int = 3) -> list[_I]:
    """Fix raw positions: a random partition each, increasing offsets in list order per
    partition, with gaps (other addresses) and batches (several events in one record)."""
    partitions = draw(st.integers(min_value=1, max_value=max_partitions))
    last: dict[int, tuple[int, int]] = {}
    out = []
    for item in items:
        p = draw(st.integers(min_value=0, max_value=partitions - 1))
        offset, index = last.get(p, (-1, 0))
        if p in last and draw(st.booleans()):
            index += 1  # next event of the same raw record (e.g. a SendGrid batch)
        else:
            offset, index = offset + draw(st.integers(min_value=1, max_value=3)), 0
        last[p] = (offset, index)
        out.append(
            item.model_copy(update={"raw": RawPosition(partition=p, offset=offset, index=index)})
        )
    return out


@st.composite
def interleaving(draw: st.DrawFn, items: Sequence[_I]) -> list[_I]:
    """A random arrival order that keeps each raw partition in offset order."""
    queues: dict[int, deque[_I]] = {}
    for item in sorted(items, key=lambda i: (i.raw.offset, i.raw.index)):
        queues.setdefault(item.raw.partition, deque()).append(item)
    labels = [item.raw.partition for item in items]
    return [queues[p].popleft() for p in draw(st.permutations(labels))]


policies = st.builds(
    Policy,
    suppress_on=st.sampled_from(
        [
            dict(DEFAULT_SUPPRESS_ON),
            {**DEFAULT_SUPPRESS_ON, "dropped": "all"},
            {"bounced.hard": "marketing", "complained": "marketing"},
            {},
        ]
    ),
    soft_bounce_threshold=st.integers(min_value=1, max_value=4),
    soft_bounce_scope=st.sampled_from(["all", "marketing"]),
    dedupe_retention=st.sampled_from([timedelta(hours=1), timedelta(hours=48)]),
    message_history_limit=st.sampled_from([1, 3, 8, 50]),
    max_causes=st.sampled_from([1, 2, 32]),
)
