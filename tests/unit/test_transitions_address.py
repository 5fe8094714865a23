"""Address transitions, scenario by scenario: suppression rules, commands, idempotence,
manual actions."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from processors.dedupe import bucket_of
from processors.policy import Policy
from processors.step import PipelineResult
from processors.transitions import apply_address_event, apply_manual_action
from schemas.commands import SuppressionChange, SuppressionCommand
from schemas.events import CanonicalEvent, RawPosition
from schemas.state import AddressState
from tests.unit.strategies import (
    ADDRESS,
    T0,
    Input,
    address_again,
    arrived,
    changes_nothing,
    event,
    manual,
    nothing_seen,
    reasons,
    recognised_as_retries,
    run,
)

POLICY = Policy()


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def shuffles(events: list[CanonicalEvent], n: int = 30) -> list[list[CanonicalEvent]]:
    orders = []
    for seed in range(n):
        order = events[:]
        random.Random(seed).shuffle(order)
        orders.append(arrived(order))
    return orders


def test_three_soft_bounces_after_the_last_delivery_suppress_with_one_command() -> None:
    events = [event("delivered", 0)] + [event("bounced.soft", m) for m in (1, 2, 3)]
    state, commands = run(arrived(events), POLICY)
    assert reasons(state) == {"all": "soft_bounce_threshold"}
    [command] = commands
    assert command.change == SuppressionChange(
        action="suppress", scope="all", reason="soft_bounce_threshold", cause="test:bounced.soft:3"
    )
    assert command.issued_at == at(3)
    assert command.suppression == state.suppression
    assert state.suppression["all"] is not None
    assert state.suppression["all"].since == at(3)


def test_the_cause_is_the_bounce_that_reached_the_threshold_in_event_time() -> None:
    events = [event("bounced.soft", m) for m in (1, 2, 3, 4)]
    for order in shuffles(events):
        state, commands = run(order, POLICY)
        assert state.suppression["all"] is not None
        assert state.suppression["all"].cause == "test:bounced.soft:3"
        assert state.suppression["all"].since == at(3)
        [command] = commands
        # The command is emitted when the third bounce *arrives*, naming the third in event
        # time among those seen so far; an older one arriving later moves the cause in the
        # state without a command (the reason did not change).
        if order[-1].dedupe_key == "test:bounced.soft:4":
            assert command.change.cause == "test:bounced.soft:3"
        else:
            assert command.change.cause in {"test:bounced.soft:3", "test:bounced.soft:4"}


def test_two_soft_a_delivery_two_soft_do_not_suppress_in_any_order() -> None:
    events = [
        event("bounced.soft", 1),
        event("bounced.soft", 2),
        event("delivered", 3),
        event("bounced.soft", 4),
        event("bounced.soft", 5),
    ]
    in_order, commands = run(arrived(events), POLICY)
    assert reasons(in_order) == {}
    assert commands == []
    assert [m.key for m in in_order.soft_bounces] == ["test:bounced.soft:4", "test:bounced.soft:5"]
    for order in shuffles(events):
        assert run(order, POLICY)[0] == in_order


def test_a_later_delivery_lifts_a_soft_bounce_suppression_and_an_older_one_does_not() -> None:
    bounces = [event("bounced.soft", m) for m in (1, 2, 3)]
    state, commands = run(arrived([*bounces, event("delivered", 10)]), POLICY)
    assert reasons(state) == {}
    assert [(c.change.action, c.change.reason, c.change.cause) for c in commands] == [
        ("suppress", "soft_bounce_threshold", "test:bounced.soft:3"),
        ("unsuppress", "delivered_after_soft_bounces", "test:delivered:10"),
    ]
    assert commands[1].issued_at == at(10)
    assert commands[1].suppression == {"all": None, "marketing": None}
    # A delivery older than the bounces, arriving last, does not lift it.
    state, commands = run(arrived([*bounces, event("delivered", 0)]), POLICY)
    assert reasons(state) == {"all": "soft_bounce_threshold"}
    assert len(commands) == 1


def test_hard_bounce_suppresses_all_mail_with_one_command() -> None:
    tables = PipelineResult()
    events = arrived([event("delivered", 0), event("bounced.hard", 5)])
    state, commands = run(events, POLICY, tables)
    assert reasons(state) == {"all": "hard_bounce"}
    [command] = commands
    assert (command.change.action, command.change.scope, command.change.reason) == (
        "suppress",
        "all",
        "hard_bounce",
    )
    assert command.suppression["marketing"] is None
    assert command.issued_at == at(5)
    # Sticky: a later delivery does not lift it.
    state, commands = run([event("delivered", 9, offset=2)], POLICY, tables)
    assert reasons(state) == {"all": "hard_bounce"}
    assert commands == []


def test_complaint_suppresses_all_and_unsubscribe_only_marketing() -> None:
    state, _ = run(arrived([event("complained", 1)]), POLICY)
    assert reasons(state) == {"all": "complaint"}
    state, commands = run(arrived([event("unsubscribed", 1)]), POLICY)
    assert reasons(state) == {"marketing": "unsubscribe"}
    assert [(c.change.scope, c.change.reason) for c in commands] == [("marketing", "unsubscribe")]


def test_dropped_suppresses_only_when_the_policy_says_so() -> None:
    assert reasons(run(arrived([event("dropped", 1)]), POLICY)[0]) == {}
    policy = Policy(suppress_on={"dropped": "marketing"})
    assert reasons(run(arrived([event("dropped", 1)]), policy)[0]) == {"marketing": "dropped"}
    assert reasons(run(arrived([event("bounced.hard", 1)]), policy)[0]) == {}


def test_the_earliest_cause_is_reported_and_a_reason_change_is_a_command() -> None:
    tables = PipelineResult()
    state, _ = run(arrived([event("bounced.hard", 10)]), POLICY, tables)
    state, commands = run([event("complained", 5, offset=1)], POLICY, tables)
    assert reasons(state) == {"all": "complaint"}
    assert [(c.change.reason, c.change.cause) for c in commands] == [
        ("complaint", "test:complained:5")
    ]
    # An even older complaint: the cause changes but the reason does not, no command.
    state, commands = run([event("complained", 1, offset=2)], POLICY, tables)
    assert state.suppression["all"] is not None
    assert state.suppression["all"].cause == "test:complained:1"
    assert commands == []
    # An older hard bounce changes the reason again: a command.
    state, commands = run([event("bounced.hard", 0, offset=3)], POLICY, tables)
    assert [(c.change.reason, c.issued_at) for c in commands] == [("hard_bounce", at(0))]


def test_provider_retry_with_a_new_raw_offset_is_counted_once() -> None:
    retry = event("bounced.hard", 1, key="nexuspromail:evt_1")
    tables = PipelineResult()
    state, commands = run(arrived([retry] * 4), POLICY, tables)
    assert state.counts == {"bounced.hard": 1}
    assert len(commands) == 1
    assert tables.index.entries == {ADDRESS: {bucket_of(retry.occurred_at): {retry.dedupe_key}}}
    # The retries were skipped: the positions are the first copy's.
    assert state.dedupe.positions == {"0": (0, 0)}


def test_replay_at_or_below_the_applied_position_is_skipped() -> None:
    events = arrived([event("bounced.hard", 1), event("opened", 2)])
    tables = PipelineResult()
    state, _ = run(events, POLICY, tables)
    assert run(events, POLICY, tables) == (state, [])
    # The position layer alone: an unseen key at an applied position is a replay too.
    unseen = event("opened", 3, key="never-seen", offset=1)
    assert apply_address_event(state, unseen, POLICY, nothing_seen) == (state, [])
    # A batch: index orders events of one raw record.
    second_in_record = event("opened", 3, key="next-in-batch", offset=1, index=1)
    applied, _ = apply_address_event(state, second_in_record, POLICY, nothing_seen)
    assert applied.counts["opened"] == 2


def test_dedupe_keys_are_pruned_by_event_time_not_wall_clock() -> None:
    policy = Policy(dedupe_retention=timedelta(hours=1))
    events = arrived([event("opened", 0, key="old"), event("opened", 180, key="new")])
    tables = PipelineResult()
    state, _ = run(events, policy, tables)
    assert tables.index.keys(ADDRESS) == {"new"}
    assert state.dedupe.buckets == (bucket_of(at(180)),)
    assert state.dedupe.newest_at == at(180)
    assert state.dedupe.positions == {"0": (1, 0)}
    # The old key is forgotten: a retry of it counts again; one of the new key does not.
    again = [e.model_copy(update={"raw": RawPosition(partition=1, offset=0)}) for e in events]
    assert run(again, policy, tables)[0].counts == {"opened": 3}
    # Nothing else prunes: with the default 48 h both are kept, however late we run.
    kept = PipelineResult()
    state, _ = run(events, POLICY, kept)
    assert kept.index.keys(ADDRESS) == {"old", "new"}
    assert state.dedupe.buckets == (bucket_of(at(0)), bucket_of(at(180)))
    with pytest.raises(ValidationError):
        Policy(dedupe_retention=timedelta(minutes=59))


def test_manual_unsuppress_lifts_a_hard_bounce_and_a_later_one_resuppresses() -> None:
    tables = PipelineResult()
    state, _ = run(arrived([event("bounced.hard", 1)]), POLICY, tables)
    lift = manual("unsuppress", 2, key="adm-1", reason="customer asked", partition=9)
    state, commands = run([lift], POLICY, tables)
    assert reasons(state) == {}
    [command] = commands
    assert (command.change.action, command.change.cause, command.change.reason) == (
        "unsuppress",
        "adm-1",
        "manual:customer asked",
    )
    assert command.issued_at == at(2)
    assert changes_nothing(address_again(tables, lift, POLICY))  # a replay
    retried = lift.model_copy(update={"raw": RawPosition(partition=9, offset=5)})
    assert changes_nothing(address_again(tables, retried, POLICY))  # a retry
    # An older hard bounce arriving after the unsuppress stays lifted ...
    state, commands = run([event("bounced.hard", 0, offset=1)], POLICY, tables)
    assert (reasons(state), commands) == ({}, [])
    # ... a later one suppresses again.
    state, commands = run([event("bounced.hard", 3, offset=2)], POLICY, tables)
    assert reasons(state) == {"all": "hard_bounce"}
    assert [c.change.cause for c in commands] == ["test:bounced.hard:3"]


def test_manual_actions_are_order_insensitive_too() -> None:
    inputs: list[Input] = [
        event("bounced.hard", 1),
        manual("unsuppress", 2),
        event("complained", 3),
        manual("suppress", 4, scope="marketing", reason="ticket 7"),
        manual("unsuppress", 4, scope="marketing"),  # same time: the unsuppress wins
    ]
    expected, _ = run(arrived(inputs), POLICY)
    assert reasons(expected) == {"all": "complaint"}
    for seed in range(30):
        order = inputs[:]
        random.Random(seed).shuffle(order)
        assert run(arrived(order), POLICY)[0] == expected


def test_the_latest_unsuppress_wins_whatever_the_arrival_order() -> None:
    later, earlier = manual("unsuppress", 10, key="adm-late"), manual("unsuppress", 2)
    state, _ = run(arrived([later, earlier, event("bounced.hard", 5)]), POLICY)
    assert state.unsuppressed_at == {"all": at(10)}
    assert reasons(state) == {}


def test_a_soft_bounce_at_the_delivery_instant_is_not_later_than_it() -> None:
    events = [event("bounced.soft", m, key=f"s{m}") for m in (5, 6, 7)] + [event("delivered", 5)]
    state, _ = run(arrived(events), POLICY)
    assert [m.key for m in state.soft_bounces] == ["s6", "s7"]
    assert reasons(state) == {}


def test_manual_unsuppress_restarts_the_soft_bounce_count() -> None:
    tables = PipelineResult()
    state, _ = run(arrived([event("bounced.soft", m) for m in (1, 2, 3)]), POLICY, tables)
    state, _ = run([manual("unsuppress", 4, partition=1)], POLICY, tables)
    assert reasons(state) == {}
    state, commands = run([event("bounced.soft", m, offset=m) for m in (5, 6)], POLICY, tables)
    assert (reasons(state), commands) == ({}, [])
    state, commands = run([event("bounced.soft", 7, offset=7)], POLICY, tables)
    assert [c.change.cause for c in commands] == ["test:bounced.soft:7"]


def test_manual_suppress_is_sticky_with_the_operators_reason() -> None:
    action = manual("suppress", 1, scope="marketing", key="adm-9", reason="legal hold")
    state, commands = apply_manual_action(None, action, POLICY, nothing_seen)
    assert reasons(state) == {"marketing": "manual:legal hold"}
    assert commands[0].change.cause == "adm-9"
    tables = PipelineResult()
    assert run([action], POLICY, tables) == (state, commands)
    state, commands = run([event("delivered", 5, offset=1)], POLICY, tables)
    assert (reasons(state), commands) == ({"marketing": "manual:legal hold"}, [])


def test_command_ids_are_stable_and_distinct() -> None:
    events = arrived([event("bounced.hard", 1), event("unsubscribed", 2)])
    first, second = run(events, POLICY)[1], run(events, POLICY)[1]
    assert [c.command_id for c in first] == [c.command_id for c in second]
    assert len({c.command_id for c in first}) == 2
    for c in first:
        assert c.command_id == SuppressionCommand.make_id(c.address, c.change)
        assert len(c.command_id) == 64
    # Pinned: a change in the id recipe would make consumers re-apply every command.
    assert first[0].command_id == SuppressionCommand.make_id(
        "someone@example.com",
        SuppressionChange(
            action="suppress", scope="all", reason="hard_bounce", cause="test:bounced.hard:1"
        ),
    )


def test_state_and_commands_survive_a_json_round_trip() -> None:
    soft: list[Input] = [event("bounced.soft", m) for m in (1, 2, 3)]
    inputs = arrived([*soft, manual("suppress", 4)])
    state, commands = run(inputs, POLICY)
    assert AddressState.model_validate_json(state.model_dump_json()) == state
    for c in commands:
        assert SuppressionCommand.model_validate_json(c.model_dump_json()) == c
    with pytest.raises(ValidationError):
        AddressState.model_validate({"address": "a@b.c", "surprise": 1})


def test_the_record_stays_bounded() -> None:
    # A week of soft bounces every 10 minutes, no delivery.
    events = arrived([event("bounced.soft", m) for m in range(0, 7 * 24 * 60, 10)])
    tables = PipelineResult()
    state, commands = run(events, POLICY, tables)
    assert len(state.soft_bounces) == POLICY.soft_bounce_marks
    # 48 h of event time, both ends included, are recognised as retries ...
    assert len(recognised_as_retries(tables, events, POLICY)) == 48 * 6 + 1
    # ... and the index holds whole hours: those plus the 5 keys of the hour the horizon
    # cuts (kept, never consulted, until that hour expires), in 48 + 1 buckets.
    assert len(tables.index.keys(ADDRESS)) == 48 * 6 + 1 + 5
    assert len(state.dedupe.buckets) == 48 + 1
    assert len(commands) == 1
    # The dedupe keys are outside the record: it is small, whatever the history.
    assert len(state.model_dump_json()) < 4_000


def test_policy_rejects_types_that_cannot_suppress() -> None:
    with pytest.raises(ValidationError):
        Policy(suppress_on={"bounced.soft": "all"})
    with pytest.raises(ValidationError):
        Policy(soft_bounce_threshold=0)
    with pytest.raises(ValidationError):
        Policy(surprise=1)  # type: ignore[call-arg]


def test_raw_position_layer_is_per_partition() -> None:
    state, _ = run([event("opened", 1, key="a", partition=0, offset=50)], POLICY)
    other = event("opened", 2, key="b", partition=1, offset=3)
    assert apply_address_event(state, other, POLICY, nothing_seen)[0].dedupe.positions == {
        "0": (50, 0),
        "1": (3, 0),
    }
    assert RawPosition(partition=1, offset=3) == other.raw
