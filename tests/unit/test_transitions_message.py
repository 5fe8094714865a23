"""Message transitions: status precedence, implied delivery, bounded history, idempotence."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from processors.policy import Policy
from processors.step import PipelineResult
from processors.transitions import apply_message_event
from schemas.common import EventType
from schemas.events import CanonicalEvent, RawPosition
from schemas.state import MessageState
from tests.unit.strategies import (
    T0,
    arrived,
    changes_nothing,
    event,
    message_again,
    nothing_seen,
    run_messages,
)

POLICY = Policy()


def status_of(*events: tuple[EventType, int], policy: Policy = POLICY) -> MessageState:
    """The state of msg_1 after ``(type, minute)`` events, checked in 20 arrival orders."""
    built = [event(kind, minute) for kind, minute in events]
    expected = run_messages(arrived(built), policy)["msg_1"]
    for seed in range(20):
        order = built[:]
        random.Random(seed).shuffle(order)
        state = run_messages(arrived(order), policy)["msg_1"]
        assert state.model_copy(update={"history": ()}) == expected.model_copy(
            update={"history": ()}
        )
        assert [h.dedupe_key for h in state.history] == [h.dedupe_key for h in expected.history]
    return expected


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ((("sent", 0), ("delivered", 1), ("opened", 2), ("clicked", 3)), "clicked"),
        ((("sent", 0), ("deferred", 1), ("bounced.soft", 2), ("delivered", 9)), "delivered"),
        ((("sent", 0), ("bounced.soft", 1), ("bounced.hard", 2)), "bounced.hard"),
        # An asynchronous bounce after the receiving server accepted the mail.
        ((("delivered", 1), ("bounced.hard", 5)), "bounced.hard"),
        ((("delivered", 1), ("opened", 2), ("complained", 3)), "complained"),
        ((("delivered", 1), ("clicked", 2), ("unsubscribed", 3)), "unsubscribed"),
        ((("sent", 0), ("dropped", 1)), "dropped"),
        # Event time does not rank: an open reported with an earlier time still wins.
        ((("delivered", 5), ("opened", 1)), "opened"),
    ],
)
def test_status_follows_precedence_whatever_the_order(
    events: tuple[tuple[EventType, int], ...], status: str
) -> None:
    assert status_of(*events).status == status


def test_an_open_before_its_delivery_implies_the_delivery() -> None:
    state = status_of(("sent", 0), ("opened", 5))
    assert (state.status, state.delivered_implied) == ("opened", True)
    assert state.status_at == T0 + timedelta(minutes=5)
    state = status_of(("sent", 0), ("opened", 5), ("delivered", 1))
    assert (state.status, state.delivered_implied) == ("opened", False)
    assert [h.type for h in state.history] == ["sent", "delivered", "opened"]
    assert not status_of(("delivered", 1)).delivered_implied


def test_first_seen_keeps_the_earliest_time_per_type() -> None:
    state = status_of(("opened", 7), ("opened", 3), ("delivered", 2), ("opened", 9))
    assert state.first_seen == {
        "delivered": T0 + timedelta(minutes=2),
        "opened": T0 + timedelta(minutes=3),
    }
    assert state.event_count == 4


def test_history_keeps_the_latest_events_by_event_time_in_any_order() -> None:
    events = [event("opened", m, key=f"o{m:02d}") for m in range(60)]
    expected = run_messages(arrived(events), POLICY)["msg_1"]
    assert len(expected.history) == POLICY.message_history_limit
    assert expected.history[0].occurred_at == T0 + timedelta(minutes=10)
    assert expected.event_count == 60
    for seed in range(10):
        order = events[:]
        random.Random(seed).shuffle(order)
        tables = PipelineResult()
        state = run_messages(arrived(order), POLICY, tables=tables)["msg_1"]
        assert [h.dedupe_key for h in state.history] == [h.dedupe_key for h in expected.history]
        # Dedupe uses the index, not the (truncated) history: the oldest event is out of
        # the history, and its retry at a new position is still refused.
        assert "o00" not in {h.dedupe_key for h in state.history}
        retry = events[0].model_copy(update={"raw": RawPosition(partition=5, offset=0)})
        assert changes_nothing(message_again(tables, retry, POLICY))


def test_history_entries_carry_what_a_reader_needs() -> None:
    opened = event("opened", 2, key="nx:1", address="b@example.com", partition=4, offset=17)
    state = apply_message_event(None, opened, POLICY, nothing_seen)
    [entry] = state.history
    assert (entry.type, entry.dedupe_key, entry.recipient) == ("opened", "nx:1", "b@example.com")
    assert (entry.raw.partition, entry.raw.offset) == (4, 17)
    assert entry.occurred_at == T0 + timedelta(minutes=2)


def test_ties_in_event_time_are_ordered_by_dedupe_key() -> None:
    events = [event("opened", 1, key="b"), event("clicked", 1, key="a")]
    state = run_messages(arrived(events), POLICY)["msg_1"]
    assert [h.dedupe_key for h in state.history] == ["a", "b"]


def test_retry_and_replay_are_counted_once() -> None:
    delivered = event("delivered", 1, key="nx:evt")
    tables = PipelineResult()
    state = run_messages(arrived([delivered] * 3), POLICY, tables=tables)["msg_1"]
    assert state.event_count == 1
    assert len(state.history) == 1
    assert tables.message_index.keys("msg_1") == {"nx:evt"}
    assert changes_nothing(message_again(tables, state_event(state, delivered), POLICY))
    unseen_at_applied_position = event("opened", 2, key="fresh", offset=0)
    assert apply_message_event(state, unseen_at_applied_position, POLICY, nothing_seen) == state


def state_event(state: MessageState, e: CanonicalEvent) -> CanonicalEvent:
    """``e`` at the position the state recorded for it (a replay of the same record)."""
    [entry] = [h for h in state.history if h.dedupe_key == e.dedupe_key]
    return e.model_copy(update={"raw": entry.raw})


def test_several_recipients_of_one_message() -> None:
    events = [
        event("delivered", 1, key="k1", address="z@example.com"),
        event("delivered", 1, key="k2", address="a@example.com"),
        event("bounced.hard", 2, key="k3", address="z@example.com"),
    ]
    state = run_messages(arrived(events), POLICY)["msg_1"]
    assert state.recipients == ("a@example.com", "z@example.com")
    assert state.status == "bounced.hard"
    # History is in event time, ties by dedupe key (k1 before k2), not by recipient.
    assert [h.dedupe_key for h in state.history] == ["k1", "k2", "k3"]
    assert [h.recipient[0] for h in state.history] == ["z", "a", "z"]


def test_small_history_limit_and_json_round_trip() -> None:
    policy = Policy(message_history_limit=2)
    state = status_of(("sent", 0), ("delivered", 1), ("opened", 2), policy=policy)
    assert [h.type for h in state.history] == ["delivered", "opened"]
    assert state.first_seen["sent"] == T0  # status and first_seen are not truncated
    assert MessageState.model_validate_json(state.model_dump_json()) == state


def test_an_event_without_message_id_is_refused() -> None:
    orphan = event("opened", 1).model_copy(update={"message_id": None})
    with pytest.raises(ValueError, match="message_id"):
        apply_message_event(None, orphan, POLICY, nothing_seen)
