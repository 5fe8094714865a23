"""Pure transitions: suppression rules, idempotence, order-insensitivity, message status."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.policy import Policy
from processors.step import PipelineResult
from schemas.commands import ManualAction, SuppressionCommand
from schemas.events import CanonicalEvent, RawPosition
from schemas.state import AddressState, MessageState
from tests.unit import strategies
from tests.unit.strategies import (
    ADDRESS,
    T0,
    address_again,
    arrived,
    changes_nothing,
    event,
    event_sets,
    message_again,
)

POLICY = Policy()


def run(
    events: Iterable[CanonicalEvent | ManualAction],
    policy: Policy = POLICY,
    tables: PipelineResult | None = None,
) -> tuple[AddressState, list[SuppressionCommand]]:
    return strategies.run(events, policy, tables)


def run_messages(events: Iterable[CanonicalEvent]) -> dict[str, MessageState]:
    return strategies.run_messages(events, POLICY)


def reasons(state: AddressState | None) -> dict[str, str]:
    return scopes(state) if state else {}


def scopes(state: AddressState) -> dict[str, str]:
    return {s: v.reason for s, v in state.suppression.items() if v is not None}


def test_hard_bounce_suppresses_all_mail_with_one_command() -> None:
    state, commands = run(arrived([event("delivered", 0), event("bounced.hard", 5)]))
    assert scopes(state) == {"all": "hard_bounce"}
    [command] = commands
    assert command.change.action == "suppress"
    assert command.change.scope == "all"
    assert command.change.cause == "test:bounced.hard:5"
    assert command.suppression["all"] is not None
    assert command.suppression["marketing"] is None
    assert command.issued_at == T0 + timedelta(minutes=5)


def test_complaint_suppresses_all_and_unsubscribe_only_marketing() -> None:
    state, _ = run(arrived([event("complained", 1)]))
    assert scopes(state) == {"all": "complaint"}
    state, commands = run(arrived([event("unsubscribed", 1)]))
    assert scopes(state) == {"marketing": "unsubscribe"}
    assert [c.change.scope for c in commands] == ["marketing"]


def test_three_soft_bounces_after_last_delivery_suppress() -> None:
    state, commands = run(
        arrived([event("delivered", 0)] + [event("bounced.soft", m) for m in (1, 2, 3)])
    )
    assert scopes(state) == {"all": "soft_bounce_threshold"}
    assert [c.change.reason for c in commands] == ["soft_bounce_threshold"]
    assert state.suppression["all"] is not None
    assert state.suppression["all"].cause == "test:bounced.soft:3"


def test_two_soft_a_delivery_two_soft_do_not_suppress_in_any_order() -> None:
    events = [
        event("bounced.soft", 1),
        event("bounced.soft", 2),
        event("delivered", 3),
        event("bounced.soft", 4),
        event("bounced.soft", 5),
    ]
    in_order, commands = run(arrived(events))
    assert scopes(in_order) == {}
    assert commands == []
    for seed in range(20):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        state, _ = run(arrived(shuffled))
        assert state == in_order


def test_later_delivery_lifts_soft_bounce_suppression_with_a_command() -> None:
    bounces = [event("bounced.soft", m) for m in (1, 2, 3)]
    state, commands = run(arrived([*bounces, event("delivered", 10)]))
    assert scopes(state) == {}
    assert [(c.change.action, c.change.reason) for c in commands] == [
        ("suppress", "soft_bounce_threshold"),
        ("unsuppress", "delivered_after_soft_bounces"),
    ]
    # An older delivery arriving late does not lift it.
    state, _ = run(arrived([*bounces, event("delivered", 0)]))
    assert scopes(state) == {"all": "soft_bounce_threshold"}


def test_provider_retry_with_new_raw_offset_counts_once() -> None:
    retry = event("opened", 1, key="nexuspromail:evt_1")
    state, _ = run(arrived([retry] * 5))
    assert state.counts == {"opened": 1}


def test_replay_at_or_below_applied_offset_is_skipped() -> None:
    events = arrived([event("bounced.hard", 1), event("opened", 2)])
    tables = PipelineResult()
    state, _ = run(events, tables=tables)
    index = tables.index.keys(ADDRESS)
    replayed, again = run(events, tables=tables)
    assert replayed == state
    assert again == []
    # Same event id at a new position (e.g. re-driven) is still a duplicate.
    moved = events[0].model_copy(update={"raw": RawPosition(partition=3, offset=0)})
    assert run([moved], tables=tables) == (state, [])
    assert tables.index.keys(ADDRESS) == index


def test_dedupe_keys_are_pruned_by_event_time_not_wall_clock() -> None:
    policy = Policy(dedupe_retention=timedelta(hours=1))
    old = event("opened", 0, key="old")
    new = event("opened", 180, key="new")
    tables = PipelineResult()
    state, _ = run(arrived([old, new]), policy, tables)
    assert tables.index.keys(ADDRESS) == {"new"}
    assert state.dedupe.newest_at == new.occurred_at
    assert state.counts == {"opened": 2}


def test_manual_unsuppress_lifts_and_later_hard_bounce_resuppresses() -> None:
    tables = PipelineResult()
    state, _ = run(arrived([event("bounced.hard", 1)]), tables=tables)
    action = ManualAction(
        action_id="adm-1",
        action="unsuppress",
        address=ADDRESS,
        scope="all",
        requested_at=T0 + timedelta(minutes=2),
        raw=RawPosition(partition=9, offset=0),
    )
    state, commands = run([action], tables=tables)
    assert scopes(state) == {}
    assert [(c.change.action, c.change.cause) for c in commands] == [("unsuppress", "adm-1")]
    assert changes_nothing(address_again(tables, action, POLICY))
    state, commands = run([event("bounced.hard", 3, offset=1)], tables=tables)
    assert scopes(state) == {"all": "hard_bounce"}
    assert len(commands) == 1


def test_command_ids_are_stable_across_runs() -> None:
    events = arrived([event("bounced.hard", 1), event("unsubscribed", 2)])
    _, first = run(events)
    _, second = run(events)
    assert [c.command_id for c in first] == [c.command_id for c in second]
    assert len({c.command_id for c in first}) == 2


def test_message_status_precedence_and_implied_delivery() -> None:
    states = run_messages(arrived([event("opened", 5), event("sent", 0)]))
    m = states["msg_1"]
    assert m.status == "opened"
    assert m.delivered_implied
    states = run_messages(arrived([event("opened", 5), event("delivered", 1), event("sent", 0)]))
    m = states["msg_1"]
    assert not m.delivered_implied
    assert [h.type for h in m.history] == ["sent", "delivered", "opened"]


def test_message_history_is_bounded_to_latest_events() -> None:
    policy_events = arrived([event("opened", m, key=f"o{m}") for m in range(60)])
    m = run_messages(policy_events)["msg_1"]
    assert len(m.history) == POLICY.message_history_limit
    assert m.history[0].occurred_at == T0 + timedelta(minutes=10)
    assert m.event_count == 60


@settings(max_examples=150, deadline=None)
@given(events=event_sets(), seed=st.integers(0, 2**16), partitions=st.integers(1, 3))
def test_same_set_in_any_order_gives_same_state(
    events: list[CanonicalEvent], seed: int, partitions: int
) -> None:
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    tables_a, tables_b = PipelineResult(), PipelineResult()
    a, _ = run(arrived(events, partitions), tables=tables_a)
    b, _ = run(arrived(shuffled, partitions), tables=tables_b)
    # Positions were given in arrival order, so everything else must agree: the window
    # (newest_at, buckets) and the index too.
    assert a.model_copy(update={"dedupe": None}) == b.model_copy(update={"dedupe": None})
    assert a.dedupe.model_copy(update={"positions": {}}) == b.dedupe.model_copy(
        update={"positions": {}}
    )
    assert tables_a.index.entries == tables_b.index.entries
    assert (
        run_messages(arrived(events, partitions)).keys()
        == run_messages(arrived(shuffled, partitions)).keys()
    )
    for mid, state in run_messages(arrived(events, partitions)).items():
        other = run_messages(arrived(shuffled, partitions))[mid]
        assert state.model_copy(update={"dedupe": None, "history": ()}) == other.model_copy(
            update={"dedupe": None, "history": ()}
        )
        assert [h.dedupe_key for h in state.history] == [h.dedupe_key for h in other.history]


@settings(max_examples=150, deadline=None)
@given(events=event_sets())
def test_applying_any_event_twice_changes_nothing(events: list[CanonicalEvent]) -> None:
    positioned = arrived(events)
    tables = PipelineResult()
    state, _ = run(positioned, tables=tables)
    moved = [e.model_copy(update={"raw": RawPosition(partition=7, offset=0)}) for e in positioned]
    for e in positioned + moved:  # replays, then retries at a new position
        assert changes_nothing(address_again(tables, e, POLICY))
        assert changes_nothing(message_again(tables, e, POLICY))
    replayed, commands = run(positioned, tables=tables)
    assert replayed == state
    assert commands == []


@settings(max_examples=100, deadline=None)
@given(events=event_sets())
def test_commands_describe_every_suppression_change(events: list[CanonicalEvent]) -> None:
    tables = PipelineResult()
    state: AddressState | None = None
    for e in arrived(events):
        before = reasons(state)
        state, commands = run([e], tables=tables)
        after = reasons(state)
        changed = {s for s in ("all", "marketing") if before.get(s) != after.get(s)}
        assert {c.change.scope for c in commands} == changed
        for c in commands:
            assert c.suppression == state.suppression
            assert c.command_id == SuppressionCommand.make_id(c.address, c.change)
