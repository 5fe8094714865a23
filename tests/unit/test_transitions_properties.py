"""Properties of the pure transitions: order-insensitivity, idempotence, replay safety,
and agreement with the rules computed from the whole set of inputs at once.

Inputs are folded through the production step and its dedupe index (tests/unit/
strategies.py), so "the state" is the record and the index together."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.dedupe import BUCKET_SECONDS, bucket_of, horizon
from processors.policy import REASONS, SOFT_BOUNCE_REASON, Policy
from processors.step import PipelineResult
from processors.transitions import SCOPES, STATUS_PRECEDENCE, manual_reason
from schemas.commands import ManualAction, SuppressionCommand
from schemas.common import EventType
from schemas.events import CanonicalEvent, RawPosition
from schemas.state import AddressState, MessageState
from tests.unit.strategies import (
    ADDRESS,
    Input,
    address_again,
    arrived,
    at_of,
    changes_nothing,
    event_sets,
    fold,
    input_sets,
    interleaving,
    key_of,
    message_again,
    policies,
    positioned,
    reasons,
    recognised_as_retries,
    run,
)

_at, _key = at_of, key_of


def _live(at: datetime, edge: datetime) -> bool:
    """Whether the dedupe bucket of ``at`` still ends after the horizon ``edge``."""
    return (bucket_of(at) + 1) * BUCKET_SECONDS > edge.timestamp()


def _expected_dedupe(inputs: Sequence[Input], policy: Policy) -> dict[str, Any]:
    """The dedupe window of a set of inputs (processors/dedupe.py), computed at once."""
    newest = max(_at(i) for i in inputs)
    edge = newest - policy.dedupe_retention
    return {
        "newest_at": newest,
        # Whole hours: every key whose hour ends after the horizon ...
        "buckets": sorted({bucket_of(_at(i)) for i in inputs if _live(_at(i), edge)}),
        "index": {_key(i) for i in inputs if _live(_at(i), edge)},
        # ... but only those at or after the horizon count as retries.
        "window": {_key(i) for i in inputs if _at(i) >= edge},
    }


def _actual_dedupe(
    tables: PipelineResult, owner: str, inputs: Sequence[Input], policy: Policy
) -> dict[str, Any]:
    dedupe = tables.addresses[owner].dedupe
    return {
        "newest_at": dedupe.newest_at,
        "buckets": list(dedupe.buckets),
        "index": tables.index.keys(owner),
        "window": recognised_as_retries(tables, inputs, policy),
    }


def _expected_address(inputs: Sequence[Input], policy: Policy) -> dict[str, Any]:
    """The address rules evaluated on the whole set at once (module docstring semantics)."""
    events = [i for i in inputs if isinstance(i, CanonicalEvent)]
    actions = [i for i in inputs if isinstance(i, ManualAction)]

    def latest(kind: str) -> datetime | None:
        return max((e.occurred_at for e in events if e.type == kind), default=None)

    delivered = latest("delivered")
    soft = sorted(
        (e.occurred_at, e.dedupe_key)
        for e in events
        if e.type == "bounced.soft" and (delivered is None or e.occurred_at > delivered)
    )[-policy.soft_bounce_marks :]
    suppression: dict[str, tuple[str, str, datetime] | None] = {}
    for scope in SCOPES:
        lifted = max(
            (a.requested_at for a in actions if a.action == "unsuppress" and a.scope == scope),
            default=None,
        )
        causes = sorted(
            [
                (e.occurred_at, e.dedupe_key, REASONS[e.type])
                for e in events
                if policy.suppress_on.get(e.type) == scope
            ]
            + [
                (a.requested_at, a.action_id, manual_reason(a))
                for a in actions
                if a.action == "suppress" and a.scope == scope
            ]
        )
        in_force = [c for c in causes if lifted is None or c[0] > lifted][-policy.max_causes :]
        counted = [s for s in soft if lifted is None or s[0] > lifted]
        if scope == policy.soft_bounce_scope and len(counted) >= policy.soft_bounce_threshold:
            at, key = counted[policy.soft_bounce_threshold - 1]
            in_force.append((at, key, SOFT_BOUNCE_REASON))
        first = min(in_force, default=None)
        suppression[scope] = None if first is None else (first[2], first[1], first[0])
    return {
        "counts": dict(Counter(e.type for e in events)),
        "last_delivered_at": delivered,
        "last_opened_at": latest("opened"),
        "last_clicked_at": latest("clicked"),
        "soft_bounces": soft,
        "suppression": suppression,
    }


def _actual_address(state: AddressState) -> dict[str, Any]:
    return {
        "counts": state.counts,
        "last_delivered_at": state.last_delivered_at,
        "last_opened_at": state.last_opened_at,
        "last_clicked_at": state.last_clicked_at,
        "soft_bounces": [(m.at, m.key) for m in state.soft_bounces],
        "suppression": {
            s: None if v is None else (v.reason, v.cause, v.since)
            for s, v in state.suppression.items()
        },
    }


def _expected_message(events: Sequence[CanonicalEvent], policy: Policy) -> dict[str, Any]:
    first_seen: dict[EventType, datetime] = {}
    for e in events:
        first_seen[e.type] = min(e.occurred_at, first_seen.get(e.type, e.occurred_at))
    status = max(first_seen, key=STATUS_PRECEDENCE.__getitem__)
    history = sorted((e.occurred_at, e.dedupe_key) for e in events)
    return {
        "status": status,
        "status_at": first_seen[status],
        "first_seen": first_seen,
        "delivered_implied": "delivered" not in first_seen
        and bool({"opened", "clicked"} & set(first_seen)),
        "recipients": sorted({e.recipient for e in events}),
        "event_count": len(events),
        "history": history[-policy.message_history_limit :],
    }


def _actual_message(state: MessageState) -> dict[str, Any]:
    return {
        "status": state.status,
        "status_at": state.status_at,
        "first_seen": state.first_seen,
        "delivered_implied": state.delivered_implied,
        "recipients": list(state.recipients),
        "event_count": state.event_count,
        "history": [(h.occurred_at, h.dedupe_key) for h in state.history],
    }


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[Policy, list[Input], list[Input]]:
    """A policy, inputs with fixed raw positions, and a legal arrival order of them."""
    inputs = draw(positioned(draw(input_sets())))
    return draw(policies), inputs, draw(interleaving(inputs))


def _no_positions(state: MessageState) -> MessageState:
    """The message state with the per-event raw positions blanked out."""
    zero = RawPosition(partition=0, offset=0)
    history = tuple(h.model_copy(update={"raw": zero}) for h in state.history)
    dedupe = state.dedupe.model_copy(update={"positions": {}})
    return state.model_copy(update={"history": history, "dedupe": dedupe})


@settings(deadline=None)  # wall-clock limits flake on a busy machine
@given(scenario=_scenario(), data=st.data())
def test_any_legal_arrival_order_gives_an_equal_state(
    scenario: tuple[Policy, list[Input], list[Input]], data: st.DataObject
) -> None:
    policy, inputs, order = scenario
    other = data.draw(interleaving(inputs))
    first = fold(order, policy)
    second = fold(other, policy, via_json=True)  # the agents reload state from JSON each time
    assert first.addresses == second.addresses
    assert first.messages == second.messages
    assert first.index.entries == second.index.entries
    assert first.message_index.entries == second.message_index.entries


@settings(deadline=None)  # wall-clock limits flake on a busy machine
@given(scenario=_scenario())
def test_state_matches_the_rules_evaluated_on_the_whole_set(
    scenario: tuple[Policy, list[Input], list[Input]],
) -> None:
    policy, inputs, order = scenario
    tables = fold(order, policy)
    state = tables.addresses[ADDRESS]
    assert _actual_address(state) == _expected_address(inputs, policy)
    assert _actual_dedupe(tables, ADDRESS, inputs, policy) == _expected_dedupe(inputs, policy)
    events = [i for i in inputs if isinstance(i, CanonicalEvent)]
    for message_id, message in tables.messages.items():
        mine = [e for e in events if e.message_id == message_id]
        assert _actual_message(message) == _expected_message(mine, policy)
        expected = _expected_dedupe(mine, policy)
        assert (message.dedupe.newest_at, list(message.dedupe.buckets)) == (
            expected["newest_at"],
            expected["buckets"],
        )
        assert tables.message_index.keys(message_id) == expected["index"]


@settings(deadline=None)  # wall-clock limits flake on a busy machine
@given(events=event_sets(), seed=st.integers(0, 2**32), partitions=st.integers(1, 3))
def test_shuffled_then_numbered_in_arrival_order_gives_an_equal_state(
    events: list[CanonicalEvent], seed: int, partitions: int
) -> None:
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    policy = Policy()
    first = fold(arrived(events, partitions), policy)
    second = fold(arrived(shuffled, partitions), policy)
    assert first.addresses == second.addresses
    assert first.index.entries == second.index.entries
    # Positions were given in arrival order, so only they may differ in the histories.
    assert {k: _no_positions(v) for k, v in first.messages.items()} == {
        k: _no_positions(v) for k, v in second.messages.items()
    }
    assert first.message_index.entries == second.message_index.entries


@settings(deadline=None)  # wall-clock limits flake on a busy machine
@given(scenario=_scenario(), data=st.data())
def test_provider_retries_at_new_positions_count_once(
    scenario: tuple[Policy, list[Input], list[Input]], data: st.DataObject
) -> None:
    policy, inputs, _ = scenario
    policy = policy.model_copy(update={"dedupe_retention": Policy().dedupe_retention})
    retries = data.draw(st.lists(st.sampled_from(inputs), max_size=5))
    with_retries = data.draw(positioned(data.draw(st.permutations(inputs + retries))))
    order = data.draw(interleaving(with_retries))
    clean_tables, tables = fold(inputs, policy), fold(order, policy)
    clean, state = clean_tables.addresses[ADDRESS], tables.addresses[ADDRESS]
    # Which copy was applied first decides the positions, nothing else.
    assert state.model_copy(update={"dedupe": None}) == clean.model_copy(update={"dedupe": None})
    assert state.dedupe.model_copy(update={"positions": {}}) == clean.dedupe.model_copy(
        update={"positions": {}}
    )
    assert tables.index.entries == clean_tables.index.entries
    assert {k: _no_positions(v) for k, v in tables.messages.items()} == {
        k: _no_positions(v) for k, v in clean_tables.messages.items()
    }
    assert tables.message_index.entries == clean_tables.message_index.entries


@settings(deadline=None)  # wall-clock limits flake on a busy machine
@given(scenario=_scenario())
def test_applying_an_input_twice_equals_applying_it_once(
    scenario: tuple[Policy, list[Input], list[Input]],
) -> None:
    policy, _, order = scenario
    tables = PipelineResult()
    for item in order:
        state, _ = run([item], policy, tables)
        # A replay at the same position changes nothing (state, index, commands) ...
        assert changes_nothing(address_again(tables, item, policy))
        # ... and so does a provider retry at a new one while its key is inside the window;
        # a key already older than the horizon when it arrives is forgotten at once and
        # counts again (processors/dedupe.py: the price of a bounded window).
        moved = item.model_copy(update={"raw": RawPosition(partition=99, offset=0)})
        edge = horizon(state.dedupe, policy)
        assert edge is not None
        retried = address_again(tables, moved, policy)
        assert changes_nothing(retried) == (_at(item) >= edge)
        if isinstance(item, CanonicalEvent) and item.message_id is not None:
            message = tables.messages[item.message_id]
            assert changes_nothing(message_again(tables, item, policy))
            message_edge = horizon(message.dedupe, policy)
            assert message_edge is not None
            moved_event = item.model_copy(update={"raw": moved.raw})
            retried_message = message_again(tables, moved_event, policy)
            assert changes_nothing(retried_message) == (item.occurred_at >= message_edge)


@settings(deadline=None)  # wall-clock limits flake on a busy machine
@given(scenario=_scenario(), data=st.data())
def test_replay_after_an_offset_reset_changes_nothing_and_emits_nothing(
    scenario: tuple[Policy, list[Input], list[Input]], data: st.DataObject
) -> None:
    policy, inputs, order = scenario
    tables = fold(order, policy)
    state = tables.addresses[ADDRESS]
    messages, index = dict(tables.messages), tables.index.keys(ADDRESS)
    # Reset each raw partition to any earlier offset (0 = the whole log), replay from there.
    resets = {
        p: data.draw(st.integers(0, max(i.raw.offset for i in inputs if i.raw.partition == p)))
        for p in {i.raw.partition for i in inputs}
    }
    replayed = [i for i in inputs if i.raw.offset >= resets[i.raw.partition]]
    replay_order = data.draw(interleaving(replayed))
    assert run(replay_order, policy, tables) == (state, [])
    assert tables.messages == messages
    assert tables.index.keys(ADDRESS) == index


@settings(deadline=None)  # wall-clock limits flake on a busy machine
@given(scenario=_scenario())
def test_commands_describe_every_change_and_the_last_one_the_final_state(
    scenario: tuple[Policy, list[Input], list[Input]],
) -> None:
    policy, _, order = scenario
    tables = PipelineResult()
    state: AddressState | None = None
    emitted: list[SuppressionCommand] = []
    for item in order:
        before = reasons(state)
        state, commands = run([item], policy, tables)
        after = reasons(state)
        assert [c.change.scope for c in commands] == [
            s for s in SCOPES if before.get(s) != after.get(s)
        ]
        for c in commands:
            assert c.suppression == state.suppression
            assert c.command_id == SuppressionCommand.make_id(c.address, c.change)
            current = state.suppression[c.change.scope]
            if c.change.action == "suppress":
                assert current is not None
                assert (c.change.reason, c.change.cause, c.issued_at) == (
                    current.reason,
                    current.cause,
                    current.since,
                )
            else:
                assert current is None
        emitted += commands
    assert state is not None
    if emitted:
        last = emitted[-1].suppression
        assert {s: v.reason for s, v in last.items() if v} == reasons(state)
    else:
        assert reasons(state) == {}
    # Same inputs in the same order: the same command ids (a rebuild re-emits them).
    assert [c.command_id for c in run(order, policy)[1]] == [c.command_id for c in emitted]
