"""Hypothesis strategies, builders and runners shared by the transition tests.

Raw positions follow Kafka: within one raw partition inputs arrive in offset order, while
partitions interleave arbitrarily. ``arrived`` numbers inputs in their arrival order;
``positioned`` fixes positions once and ``interleaving`` draws an arrival order that
respects them, which is exactly the freedom a real consumer has.

The runners fold inputs through the production step (``processors.step``: the
transitions plus the dedupe index outside the record), into a ``PipelineResult`` that
plays both tables and their indexes; pass one in to go on from where a run stopped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

from hypothesis import strategies as st

from processors.dedupe import NO_CHANGE, is_retry
from processors.policy import DEFAULT_SUPPRESS_ON, Policy
from processors.step import (
    AddressOutcome,
    MessageOutcome,
    PipelineResult,
    address_step,
    message_step,
)
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


def nothing_seen(bucket: int, key: str) -> bool:
    """The dedupe index of an owner that has none yet."""
    return False


def owner_of(item: Input) -> str:
    """The address an input belongs to."""
    return item.address if isinstance(item, ManualAction) else item.recipient


def at_of(item: Input) -> datetime:
    """An input's event time."""
    return item.requested_at if isinstance(item, ManualAction) else item.occurred_at


def key_of(item: Input) -> str:
    """An input's dedupe key."""
    return item.action_id if isinstance(item, ManualAction) else item.dedupe_key


def fold(
    inputs: Iterable[Input],
    policy: Policy,
    tables: PipelineResult | None = None,
    *,
    via_json: bool = False,
) -> PipelineResult:
    """Apply inputs in order; ``via_json`` stores and reloads each state before use."""
    tables = PipelineResult() if tables is None else tables
    for item in inputs:
        if via_json:
            _reload(tables, item)
        tables.apply(item, policy)
    return tables


def _reload(tables: PipelineResult, item: Input) -> None:
    owner = owner_of(item)
    if owner in tables.addresses:
        stored = tables.addresses[owner].model_dump_json()
        tables.addresses[owner] = AddressState.model_validate_json(stored)
    mid = None if isinstance(item, ManualAction) else item.message_id
    if mid is not None and mid in tables.messages:
        stored = tables.messages[mid].model_dump_json()
        tables.messages[mid] = MessageState.model_validate_json(stored)


def run(
    inputs: Iterable[Input],
    policy: Policy,
    tables: PipelineResult | None = None,
    *,
    via_json: bool = False,
) -> tuple[AddressState, list[SuppressionCommand]]:
    """Apply inputs of one address in order: its state and the commands they caused."""
    items = list(inputs)
    [owner] = {owner_of(i) for i in items}
    tables = PipelineResult() if tables is None else tables
    issued = len(tables.commands)
    fold(items, policy, tables, via_json=via_json)
    return tables.addresses[owner], tables.commands[issued:]


def run_messages(
    inputs: Iterable[Input],
    policy: Policy,
    *,
    via_json: bool = False,
    tables: PipelineResult | None = None,
) -> dict[str, MessageState]:
    """Apply the message events among ``inputs``; message id -> state."""
    return fold(inputs, policy, tables, via_json=via_json).messages


def address_again(tables: PipelineResult, item: Input, policy: Policy) -> AddressOutcome:
    """What ``item`` would do to its address now, without applying it."""
    owner = owner_of(item)
    return address_step(tables.addresses.get(owner), item, policy, tables.index.lookup(owner))


def message_again(tables: PipelineResult, item: CanonicalEvent, policy: Policy) -> MessageOutcome:
    """What ``item`` would do to its message now, without applying it."""
    assert item.message_id is not None
    mid = item.message_id
    seen = tables.message_index.lookup(mid)
    return message_step(tables.messages.get(mid), item, policy, seen)


def changes_nothing(outcome: AddressOutcome | MessageOutcome) -> bool:
    """Neither the state, nor the index, nor a command: the store would not be written."""
    commands = outcome.commands if isinstance(outcome, AddressOutcome) else []
    return not outcome.changed and outcome.index == NO_CHANGE and commands == []


def recognised_as_retries(
    tables: PipelineResult, inputs: Iterable[Input], policy: Policy
) -> set[str]:
    """The keys among ``inputs`` that the address's dedupe index would refuse as retries."""
    found = set()
    for item in inputs:
        state = tables.addresses[owner_of(item)]
        seen = tables.index.lookup(owner_of(item))
        if is_retry(state.dedupe, key_of(item), at_of(item), policy, seen):
            found.add(key_of(item))
    return found


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
