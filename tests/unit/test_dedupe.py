"""The dedupe index outside the record (processors/dedupe.py): bucket arithmetic, the
bound on live buckets, expiry by event time, repair after a crash, and exactly-once
inside the window for any mix of retries and replays."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from processors import keys
from processors.dedupe import (
    BUCKET_SECONDS,
    NO_CHANGE,
    IndexChange,
    MemoryIndex,
    bucket_of,
    horizon,
    index_change,
    is_replay,
    is_retry,
    remember,
    repair,
)
from processors.policy import Policy
from processors.step import address_step
from schemas.events import CanonicalEvent, RawPosition
from schemas.state import AddressState, Dedupe
from tests.unit.strategies import ADDRESS, T0, event, nothing_seen

HOUR = timedelta(hours=1)
ONE_HOUR = Policy(dedupe_retention=HOUR)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def raw(offset: int, partition: int = 0, index: int = 0) -> RawPosition:
    return RawPosition(partition=partition, offset=offset, index=index)


def bucket_end(bucket: int) -> float:
    return (bucket + 1) * BUCKET_SECONDS


# -- buckets ------------------------------------------------------------------------------


def test_a_bucket_is_an_event_time_hour_whatever_the_utc_offset() -> None:
    first = bucket_of(T0)  # T0 is 10:00 UTC, the start of an hour
    assert first == int(T0.timestamp()) // 3600
    assert bucket_of(T0 + timedelta(minutes=59, seconds=59, microseconds=999_999)) == first
    assert bucket_of(T0 + HOUR) == first + 1
    assert bucket_of(T0 - timedelta(microseconds=1)) == first - 1
    assert bucket_of(T0.astimezone(timezone(timedelta(hours=-5)))) == first


def test_bucket_keys_are_prefixes_that_sort_in_time_order() -> None:
    b = bucket_of(T0)
    entry = keys.dedupe_entry(ADDRESS, b, "nx:evt_1")
    assert entry.startswith(keys.dedupe_bucket(ADDRESS, b))
    assert not entry.startswith(keys.dedupe_bucket(ADDRESS, b + 1))
    assert keys.is_internal(entry)
    # Ten digits: bytewise order is numeric order, and one bucket never prefixes another.
    later = [keys.dedupe_bucket(ADDRESS, n) for n in (9, 10, 99, 100, b, b + 1)]
    assert later == sorted(later)
    assert all(len(p) == len(later[0]) for p in later)


@settings(deadline=None)
@given(
    inputs=st.lists(
        st.tuples(st.integers(0, 6000), st.integers(0, 2)),  # (minute, raw partition)
        min_size=1,
        max_size=60,
    ),
    retention=st.sampled_from([HOUR, timedelta(minutes=90), timedelta(hours=48)]),
)
def test_remember_keeps_a_bounded_set_of_live_buckets_whatever_the_input(
    inputs: list[tuple[int, int]], retention: timedelta
) -> None:
    policy = Policy(dedupe_retention=retention)
    most = math.ceil(retention / HOUR) + 1  # retention / 1 h + 1 for whole hours
    dedupe, newest = Dedupe(), at(0)
    for n, (minute, partition) in enumerate(inputs):
        newest = at(minute) if n == 0 else max(newest, at(minute))
        dedupe = remember(dedupe, at(minute), raw(n, partition), policy)
        edge = newest - retention
        assert dedupe.newest_at == newest
        assert len(dedupe.buckets) <= most
        assert list(dedupe.buckets) == sorted(set(dedupe.buckets))
        assert all(bucket_end(b) > edge.timestamp() for b in dedupe.buckets)
        assert bucket_of(newest) in dedupe.buckets
        assert dedupe.positions[str(partition)] == (n, 0)


def test_a_bucket_expires_only_once_it_ends_at_or_before_the_horizon() -> None:
    first = remember(Dedupe(), at(10), raw(0), ONE_HOUR)  # in the 10:00 bucket
    b = bucket_of(at(10))
    almost = remember(first, at(119) + timedelta(seconds=59), raw(1), ONE_HOUR)
    # Horizon 10:59:59: the 10:00 bucket ends after it, it stays.
    assert b in almost.buckets
    assert index_change(first, almost, "k", at(119), ONE_HOUR).expire == ()
    ended = remember(almost, at(120), raw(2), ONE_HOUR)
    # Horizon 11:00, the bucket's end: now it expires, and the index deletes it.
    assert b not in ended.buckets
    assert index_change(almost, ended, "k2", at(120), ONE_HOUR) == IndexChange(
        remember=(bucket_of(at(120)), "k2"), expire=(b,)
    )
    # The horizon follows the newest *event* time, not the arrival: an old event arriving
    # late moves nothing.
    late = remember(ended, at(0), raw(3), ONE_HOUR)
    assert (late.newest_at, late.buckets) == (ended.newest_at, ended.buckets)
    assert index_change(ended, late, "old", at(0), ONE_HOUR) == NO_CHANGE


def test_a_key_in_the_bucket_the_horizon_cuts_is_filed_but_never_consulted() -> None:
    dedupe = remember(Dedupe(), at(100), raw(0), ONE_HOUR)  # horizon 10:40
    # 10:30 is before the horizon, in the 10:00 bucket that still ends after it: filed, so
    # that the index does not depend on whether it came before or after the 11:40 event.
    after = remember(dedupe, at(30), raw(1), ONE_HOUR)
    assert index_change(dedupe, after, "k", at(30), ONE_HOUR).remember == (bucket_of(at(30)), "k")
    index = MemoryIndex()
    index.apply(ADDRESS, IndexChange(remember=(bucket_of(at(30)), "k")))
    # But a retry of it counts again: it is older than the horizon.
    assert not is_retry(after, "k", at(30), ONE_HOUR, index.lookup(ADDRESS))


# -- replays, retries and repair ------------------------------------------------------------


def test_a_replay_is_at_or_below_the_highest_position_of_its_partition() -> None:
    dedupe = remember(Dedupe(), at(0), raw(5, index=1), ONE_HOUR)
    assert is_replay(dedupe, raw(5, index=1))
    assert is_replay(dedupe, raw(4, index=9))
    assert not is_replay(dedupe, raw(5, index=2))
    assert not is_replay(dedupe, raw(0, partition=1))


def test_repair_refiles_a_replayed_key_the_index_lost() -> None:
    dedupe = remember(Dedupe(), at(30), raw(0), ONE_HOUR)
    index = MemoryIndex()  # a crash after the state record, before its dedupe entry
    change = repair(dedupe, "k", at(30), ONE_HOUR, index.lookup(ADDRESS))
    assert change == IndexChange(remember=(bucket_of(at(30)), "k"))
    index.apply(ADDRESS, change)
    assert is_retry(dedupe, "k", at(30), ONE_HOUR, index.lookup(ADDRESS))
    # Present already: nothing to do.
    assert repair(dedupe, "k", at(30), ONE_HOUR, index.lookup(ADDRESS)) == NO_CHANGE


def test_repair_files_nothing_once_the_keys_bucket_has_expired() -> None:
    dedupe = remember(Dedupe(), at(30), raw(0), ONE_HOUR)
    dedupe = remember(dedupe, at(200), raw(1), ONE_HOUR)  # the 10:00 bucket has expired
    horizon_now = horizon(dedupe, ONE_HOUR)
    assert horizon_now is not None
    assert at(30) < horizon_now
    assert repair(dedupe, "k", at(30), ONE_HOUR, nothing_seen) == NO_CHANGE


# -- exactly once inside the window ----------------------------------------------------------


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[Policy, list[CanonicalEvent]]:
    """Distinct keys, each delivered one or more times: retries at new raw positions and
    replays of positions already delivered, in any order, over spans wider than the
    retention so that keys fall out of the window."""
    policy = Policy(dedupe_retention=draw(st.sampled_from([HOUR, 3 * HOUR, 48 * HOUR])))
    n = draw(st.integers(1, 10))
    span = draw(st.sampled_from([90, 600, 4000]))
    times = [draw(st.integers(0, span)) for _ in range(n)]
    next_offset: dict[int, int] = {}
    out: list[CanonicalEvent] = []
    for _ in range(draw(st.integers(1, 40))):
        replay = draw(st.integers(0, 3)) == 0  # about one delivery in four
        if out and replay:
            out.append(draw(st.sampled_from(out)))  # the same record again
            continue
        k, partition = draw(st.integers(0, n - 1)), draw(st.integers(0, 2))
        offset = next_offset.get(partition, 0)
        next_offset[partition] = offset + draw(st.integers(1, 3))
        out.append(event("opened", times[k], key=f"k{k}", partition=partition, offset=offset))
    return policy, out


@settings(deadline=None)
@given(scenario=arrivals())
def test_each_distinct_key_inside_the_window_is_applied_exactly_once(
    scenario: tuple[Policy, list[CanonicalEvent]],
) -> None:
    policy, inputs = scenario
    state: AddressState | None = None
    index = MemoryIndex()
    applied: dict[str, int] = {}
    # The specification, without buckets: applied iff not a replay, and either a key never
    # applied or one already older than the horizon (forgotten: it counts again).
    model_keys: set[str] = set()
    model_top: dict[int, tuple[int, int]] = {}
    model_newest: datetime | None = None
    for e in inputs:
        position = (e.raw.offset, e.raw.index)
        replay = e.raw.partition in model_top and position <= model_top[e.raw.partition]
        edge = None if model_newest is None else model_newest - policy.dedupe_retention
        retry = e.dedupe_key in model_keys and (edge is None or e.occurred_at >= edge)
        expected = not replay and not retry

        outcome = address_step(state, e, policy, index.lookup(ADDRESS))
        index.apply(ADDRESS, outcome.index)
        state = outcome.state
        assert outcome.changed == expected, e
        if expected:
            applied[e.dedupe_key] = applied.get(e.dedupe_key, 0) + 1
            model_keys.add(e.dedupe_key)
            model_top[e.raw.partition] = position
            newest = e.occurred_at
            model_newest = newest if model_newest is None else max(model_newest, newest)
    assert state is not None
    assert model_newest is not None
    edge = model_newest - policy.dedupe_retention
    times = {e.dedupe_key: e.occurred_at for e in inputs}
    # Never lost, and exactly once for every key inside the final window.
    assert set(applied) == set(times)
    assert {k for k, n in applied.items() if n == 1} >= {k for k, t in times.items() if t >= edge}
    assert sum(state.counts.values()) == sum(applied.values())
    # The index is a function of what was applied: every key whose hour is still live.
    live = {k for k, t in times.items() if bucket_end(bucket_of(t)) > edge.timestamp()}
    assert index.keys(ADDRESS) == live
    assert list(state.dedupe.buckets) == sorted({bucket_of(times[k]) for k in live})
