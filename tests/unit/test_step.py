"""The pure pipeline step (processors/step.py): hot keys keep small records at a constant
cost per event, what an outcome writes and in which order, a crash after any prefix of
those writes, and the whole pipeline on raw records.

``DictStore`` plays a table's store as the agents use it: state records and index entries
under the processors/keys.py layout, read back (state from JSON) for every input.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from processors import keys
from processors.dedupe import SeenLookup, bucket_of, horizon
from processors.normalise import NormaliseOptions
from processors.policy import Policy
from processors.step import (
    AddressOutcome,
    MessageOutcome,
    RawRecord,
    Write,
    address_step,
    message_step,
    run_pipeline,
)
from schemas.commands import ManualAction
from schemas.events import CanonicalEvent, RawPosition
from schemas.raw import RawWebhook
from schemas.state import AddressState, MessageState, ScopeSuppression
from tests.fixtures.payloads import RECEIVED_AT, load, raw
from tests.fixtures.signing import sign
from tests.unit.strategies import (
    ADDRESS,
    KINDS,
    T0,
    Input,
    event,
    input_sets,
    interleaving,
    manual,
    owner_of,
    policies,
    positioned,
)

POLICY = Policy()
HOT = 5_000
EARLY = 500  # by then every bounded collection of the hot records is full


class DictStore:
    """One table's store: records and index entries by key, as the agents write them."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.lookups = 0  # dedupe index point reads
        self.listed = 0  # keys returned by prefix scans (expired buckets)

    def keys_with_prefix(self, prefix: bytes) -> list[bytes]:
        found = sorted(k for k in self.data if k.startswith(prefix))
        self.listed += len(found)
        return found

    def seen(self, owner: str) -> SeenLookup:
        def seen(bucket: int, key: str) -> bool:
            self.lookups += 1
            return keys.dedupe_entry(owner, bucket, key) in self.data

        return seen

    def write(self, writes: Iterable[Write]) -> None:
        for key, value in writes:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def index(self, owner: str) -> set[str]:
        """The dedupe keys remembered for ``owner``."""
        prefix = keys.DEDUPE + owner.encode() + b"\x00"
        skip = len(prefix) + 11  # ten digits of bucket and a separator
        return {k[skip:].decode() for k in self.data if k.startswith(prefix)}


def address_writes(
    store: DictStore, item: Input, policy: Policy = POLICY
) -> tuple[AddressOutcome, list[Write]]:
    """What the addresses agent computes for ``item`` (nothing written yet)."""
    owner = owner_of(item)
    stored = store.data.get(owner.encode())
    state = AddressState.model_validate_json(stored) if stored else None
    outcome = address_step(state, item, policy, store.seen(owner))
    value = outcome.state.model_dump_json().encode()
    return outcome, outcome.writes(value, store.keys_with_prefix)


def message_writes(
    store: DictStore, item: CanonicalEvent, policy: Policy = POLICY
) -> tuple[MessageOutcome, list[Write]]:
    """What the messages agent computes for ``item`` (nothing written yet)."""
    assert item.message_id is not None
    stored = store.data.get(item.message_id.encode())
    state = MessageState.model_validate_json(stored) if stored else None
    outcome = message_step(state, item, policy, store.seen(item.message_id))
    value = outcome.state.model_dump_json().encode()
    return outcome, outcome.writes(value, store.keys_with_prefix)


def address_of(store: DictStore, owner: str = ADDRESS) -> AddressState:
    return AddressState.model_validate_json(store.data[owner.encode()])


def message_of(store: DictStore, message_id: str) -> MessageState:
    return MessageState.model_validate_json(store.data[message_id.encode()])


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# -- hot keys -------------------------------------------------------------------------------


def shuffled(events: list[CanonicalEvent], seed: int) -> list[CanonicalEvent]:
    """``events`` in a provider's (random) order, at increasing raw offsets of 3 partitions.

    Offsets start at 100,000 so that their width stays the same over the run."""
    order = events[:]
    random.Random(seed).shuffle(order)
    position = [RawPosition(partition=n % 3, offset=100_000 + n) for n in range(len(order))]
    return [e.model_copy(update={"raw": p}) for e, p in zip(order, position, strict=True)]


def hot_address_events() -> list[CanonicalEvent]:
    """5,000 distinct events for one address over 72 h of event time, every type.

    Its deliveries and complaints all fall in the first hour (an inbox that stopped
    accepting mail): from early on, the soft bounces later than the last delivery and the
    causes in force are at their bounds, and the reported cause stays a hard bounce."""
    events = []
    for i in range(HOT):
        kind = KINDS[i % len(KINDS)]
        second = i % 3600 if kind in ("delivered", "complained") else i * 72 * 3600 // HOT
        e = event(kind, 0, key=f"hot:{i:05d}")
        events.append(e.model_copy(update={"occurred_at": T0 + timedelta(seconds=second)}))
    return shuffled(events, seed=7)


def hot_message_events() -> list[CanonicalEvent]:
    """5,000 events for one message id sent to a list: a distinct recipient each."""
    events = []
    for i in range(HOT):
        e = event(KINDS[i % len(KINDS)], 0, key=f"list:{i:05d}", address=f"r{i:05d}@example.com")
        second = i * 72 * 3600 // HOT
        events.append(e.model_copy(update={"occurred_at": T0 + timedelta(seconds=second)}))
    return shuffled(events, seed=11)


def retried(events: Sequence[CanonicalEvent], edge: datetime) -> list[CanonicalEvent]:
    """500 of ``events`` inside the window, posted again: same keys, new raw offsets."""
    inside = [e for e in events if e.occurred_at >= edge]
    again = random.Random(3).sample(inside, 500)
    return [
        e.model_copy(update={"raw": RawPosition(partition=3, offset=n)})
        for n, e in enumerate(again)
    ]


def without_counters(state: AddressState | MessageState) -> str:
    """The record with the values that only grow in width (counters) and the history's
    types (their mix varies, not their number) normalised away."""
    if isinstance(state, AddressState):
        return state.model_copy(update={"counts": dict.fromkeys(state.counts, 0)}).model_dump_json()
    history = tuple(h.model_copy(update={"type": "sent"}) for h in state.history)
    return state.model_copy(update={"event_count": 0, "history": history}).model_dump_json()


def test_a_hot_address_keeps_a_small_record_exact_counts_and_a_constant_cost() -> None:
    events = hot_address_events()
    store = DictStore()
    sizes: dict[int, int] = {}
    early: AddressState | None = None
    for n, e in enumerate(events, start=1):
        lookups = store.lookups
        outcome, writes = address_writes(store, e)
        assert outcome.changed
        assert store.lookups - lookups <= 1  # one point read of the index per event
        store.write(writes)
        sizes[n] = len(store.data[ADDRESS.encode()])
        if n == EARLY:
            early = address_of(store)
    state = address_of(store)
    assert max(sizes.values()) < 16 * 1024
    assert state.counts == Counter(e.type for e in events)
    assert sum(state.counts.values()) == HOT
    # Full from early on (the precondition of the comparison below) ...
    assert early is not None
    for s in (early, state):
        assert len(s.soft_bounces) == POLICY.soft_bounce_marks
        assert {scope: len(c) for scope, c in s.causes.items()} == {"all": 32, "marketing": 32}
        assert len(s.dedupe.buckets) == 48 + 1
    # ... and no larger after ten times the history: only counters gain digits.
    assert len(without_counters(state)) <= len(without_counters(early))
    # Each index entry is listed once, to be deleted with its bucket: O(1) amortised.
    assert store.listed <= HOT
    edge = horizon(state.dedupe, POLICY)
    assert edge is not None
    # The index holds the keys of every hour that ends after the horizon, no others.
    live = {e.dedupe_key for e in events if bucket_of(e.occurred_at) >= bucket_of(edge)}
    assert store.index(ADDRESS) == live

    # The same 500 events posted again (provider retries) change nothing at all.
    before = dict(store.data)
    for e in retried(events, edge):
        outcome, writes = address_writes(store, e)
        assert (outcome.changed, outcome.commands, writes) == (False, [], [])
    assert store.data == before
    # By design, a retry of an event already older than the horizon counts again.
    old = next(e for e in events if e.occurred_at < edge - timedelta(hours=1))
    outcome, writes = address_writes(
        store, old.model_copy(update={"raw": RawPosition(partition=4, offset=0)})
    )
    assert outcome.state.counts[old.type] == state.counts[old.type] + 1


def test_a_message_sent_to_a_large_list_keeps_a_small_record() -> None:
    events = hot_message_events()
    store = DictStore()
    early: MessageState | None = None
    for n, e in enumerate(events, start=1):
        lookups = store.lookups
        outcome, writes = message_writes(store, e)
        assert outcome.changed
        assert store.lookups - lookups <= 1
        store.write(writes)
        assert len(store.data[b"msg_1"]) < 16 * 1024
        if n == EARLY:
            early = message_of(store, "msg_1")
    state = message_of(store, "msg_1")
    assert early is not None
    assert state.event_count == HOT
    assert state.first_seen.keys() == set(KINDS)
    limit = POLICY.message_recipients_limit
    assert state.recipients == tuple(f"r{i:05d}@example.com" for i in range(limit))
    assert state.recipients_truncated
    for s in (early, state):
        assert len(s.recipients) == limit
        assert len(s.history) == POLICY.message_history_limit
        assert len(s.dedupe.buckets) == 48 + 1
    assert len(without_counters(state)) <= len(without_counters(early))
    assert store.listed <= HOT

    edge = horizon(state.dedupe, POLICY)
    assert edge is not None
    before = dict(store.data)
    for e in retried(events, edge):
        outcome, writes = message_writes(store, e)
        assert (outcome.changed, writes) == (False, [])
    assert store.data == before


# -- what an outcome writes, in which order -------------------------------------------------


def test_a_first_event_writes_its_state_then_its_dedupe_entry_and_no_list_entry() -> None:
    store = DictStore()
    outcome, writes = address_writes(store, event("opened", 0, key="k1"))
    assert outcome.suppression == {}  # a new address starts unsuppressed: nothing to delete
    assert writes == [
        (ADDRESS.encode(), outcome.state.model_dump_json().encode()),
        (keys.dedupe_entry(ADDRESS, bucket_of(T0), "k1"), b"1"),
    ]
    message, message_out = message_writes(store, event("opened", 0, key="k1"))
    assert message_out == [
        (b"msg_1", message.state.model_dump_json().encode()),
        (keys.dedupe_entry("msg_1", bucket_of(T0), "k1"), b"1"),
    ]


def _positions(writes: Sequence[Write], owner: str) -> tuple[list[int], int, list[int]]:
    """Indexes of the list entries, of the state record and of the dedupe entries."""
    listed = [n for n, (k, _) in enumerate(writes) if k.startswith(keys.SUPPRESSION)]
    [state] = [n for n, (k, _) in enumerate(writes) if k == owner.encode()]
    dedupe = [n for n, (k, v) in enumerate(writes) if k.startswith(keys.DEDUPE) and v]
    return listed, state, dedupe


def test_the_suppression_list_entry_follows_every_change_of_its_scope() -> None:
    store = DictStore()
    entry = keys.suppression_entry("all", ADDRESS)

    def step(item: Input) -> list[Write]:
        _, writes = address_writes(store, item)
        store.write(writes)
        listed, state, dedupe = _positions(writes, ADDRESS)
        assert all(n < state for n in listed)  # derived from the state: written before it
        assert all(n > state for n in dedupe)  # the input's dedupe entry: after it
        return [w for w in writes if w[0].startswith(keys.SUPPRESSION)]

    def suppression(reason: str, cause: str, minute: int) -> bytes:
        return (
            ScopeSuppression(reason=reason, cause=cause, since=at(minute))
            .model_dump_json()
            .encode()
        )

    assert step(event("bounced.hard", 10, key="hb", offset=1)) == [
        (entry, suppression("hard_bounce", "hb", 10))
    ]
    assert store.data[entry] == suppression("hard_bounce", "hb", 10)
    # An older complaint: another reason.
    assert step(event("complained", 5, key="c5", offset=2)) == [
        (entry, suppression("complaint", "c5", 5))
    ]
    # An even older one: same reason, other cause and since (no command, but the list shows it).
    assert step(event("complained", 1, key="c1", offset=3)) == [
        (entry, suppression("complaint", "c1", 1))
    ]
    assert step(event("opened", 20, key="o", offset=4)) == []
    marketing = keys.suppression_entry("marketing", ADDRESS)
    assert step(event("unsubscribed", 21, key="u", offset=5)) == [
        (marketing, suppression("unsubscribe", "u", 21))
    ]
    assert step(manual("unsuppress", 30, key="adm-1", offset=6)) == [(entry, None)]
    assert entry not in store.data
    assert store.data[marketing] == suppression("unsubscribe", "u", 21)


def test_expired_buckets_are_deleted_first_and_only_the_keys_given() -> None:
    policy = Policy(dedupe_retention=timedelta(hours=1))
    store = DictStore()
    for e in (event("opened", 0, key="k0"), event("opened", 10, key="k1", offset=1)):
        store.write(address_writes(store, e, policy)[1])
    outcome, writes = address_writes(store, event("opened", 180, key="k2", offset=2), policy)
    expired = bucket_of(at(0))
    assert outcome.index.expire == (expired,)
    assert writes == [
        (keys.dedupe_entry(ADDRESS, expired, "k0"), None),
        (keys.dedupe_entry(ADDRESS, expired, "k1"), None),
        (ADDRESS.encode(), outcome.state.model_dump_json().encode()),
        (keys.dedupe_entry(ADDRESS, bucket_of(at(180)), "k2"), b"1"),
    ]
    # The outcome deletes what the store lists under the expired bucket's prefix, no more.
    asked: list[bytes] = []

    def keys_in(prefix: bytes) -> list[bytes]:
        asked.append(prefix)
        return [prefix + b"x", prefix + b"y"]

    deletes = [w for w in outcome.writes(b"state", keys_in) if w[1] is None]
    assert asked == [keys.dedupe_bucket(ADDRESS, expired)]
    assert deletes == [(asked[0] + b"x", None), (asked[0] + b"y", None)]
    store.write(writes)
    assert store.index(ADDRESS) == {"k2"}


def test_a_retry_writes_nothing_and_a_replay_refiles_a_lost_dedupe_entry() -> None:
    store = DictStore()
    bounce = event("bounced.hard", 1, key="nx:1")
    store.write(address_writes(store, bounce)[1])
    moved = bounce.model_copy(update={"raw": RawPosition(partition=1, offset=0)})
    assert address_writes(store, moved)[1] == []
    assert address_writes(store, bounce)[1] == []
    # A crash after the state record, before its dedupe entry: the replay re-files it.
    entry = keys.dedupe_entry(ADDRESS, bucket_of(at(1)), "nx:1")
    del store.data[entry]
    outcome, writes = address_writes(store, bounce)
    assert (outcome.changed, outcome.commands, writes) == (False, [], [(entry, b"1")])


# -- a crash after any prefix of an input's writes -------------------------------------------

Step = Callable[[DictStore, Input, Policy], list[Write]]


def _address_step(store: DictStore, item: Input, policy: Policy) -> list[Write]:
    return address_writes(store, item, policy)[1]


def _message_step(store: DictStore, item: Input, policy: Policy) -> list[Write]:
    if isinstance(item, ManualAction) or item.message_id is None:
        return []
    return message_writes(store, item, policy)[1]


@st.composite
def _crash(draw: st.DrawFn) -> tuple[Policy, list[Input], int, int, int]:
    """A policy, an arrival order with retries, the input during which the worker dies,
    how many of its writes reached the changelog, and where consumption restarts."""
    policy = draw(policies)
    inputs = draw(input_sets(max_size=15))
    retries = draw(st.lists(st.sampled_from(inputs), max_size=4))
    order = draw(interleaving(draw(positioned(inputs + retries))))
    crash = draw(st.integers(0, len(order) - 1))
    return policy, order, crash, draw(st.integers(0, 8)), draw(st.integers(0, crash))


@settings(deadline=None)
@given(scenario=_crash(), table=st.sampled_from(["addresses", "messages"]))
def test_a_crash_after_any_prefix_of_an_inputs_writes_then_redelivery_loses_nothing(
    scenario: tuple[Policy, list[Input], int, int, int], table: str
) -> None:
    policy, order, crash, kept, restart = scenario
    step = _address_step if table == "addresses" else _message_step
    clean = DictStore()
    for item in order:
        clean.write(step(clean, item, policy))
    crashed = DictStore()
    for item in order[:crash]:
        crashed.write(step(crashed, item, policy))
    # The input's records are several changelog records: any prefix of them may survive.
    crashed.write(step(crashed, order[crash], policy)[:kept])
    # It was not acked: it comes again, after the acked inputs since the last commit.
    for item in order[restart:]:
        crashed.write(step(crashed, item, policy))
    assert crashed.data == clean.data


# -- the whole pipeline on raw records --------------------------------------------------------

OPTIONS = NormaliseOptions()


def nexus(kind: str, event_id: str, second: int, *, offset: int) -> RawRecord:
    """A signed NexusProMail webhook for Jane as ingest appends it to ``webhooks.raw``."""
    document = orjson.loads(load("nexuspromail_bounced_hard.json"))
    document["id"], document["type"] = event_id, kind
    document["data"]["timestamp"] = f"2026-05-13T10:00:{second:02d}Z"
    body, headers = sign("nexuspromail", orjson.dumps(document), "unit-secret", now=0)
    record = raw("nexuspromail", body, http_headers=headers, offset=offset)
    return RawRecord(record.body, record.kafka_headers(), 2, offset)


def admin_unsuppress(offset: int) -> RawRecord:
    body = orjson.dumps(
        {
            "schema_version": 1,
            "action_id": "admin:1",
            "action": "unsuppress",
            "address": "Jane.Doe@Example.com",
            "scope": "all",
            "reason": "fixed",
            "actor": "admin",
            "requested_at": "2026-05-13T11:00:00Z",
        }
    )
    record = RawWebhook(
        body=body,
        source="admin",
        provider="admin",
        received_at=RECEIVED_AT,
        verification="admin_token",
        kind="manual_action",
    )
    return RawRecord(body, record.kafka_headers(), 2, offset)


def test_run_pipeline_gives_the_tables_and_commands_and_rejects_bad_records() -> None:
    bounce = nexus("bounced.hard", "evt_2", 3, offset=11)
    records = [
        nexus("delivered", "evt_1", 0, offset=10),
        bounce,
        RawRecord(bounce.value, bounce.headers, 2, 12),  # the provider's retry
        RawRecord(b"not json", bounce.headers, 2, 13),
        RawRecord(None, bounce.headers, 2, 14),
        RawRecord(bounce.value, [], 2, 15),  # no headers: not a record ingest wrote
        admin_unsuppress(16),
    ]
    result = run_pipeline(records, POLICY, OPTIONS)
    jane = "jane.doe@example.com"
    assert list(result.addresses) == [jane]
    state = result.addresses[jane]
    assert state.counts == {"bounced.hard": 1, "delivered": 1}
    assert state.suppression == {"all": None, "marketing": None}
    assert state.dedupe.positions == {"2": (16, 0)}
    assert [(c.change.action, c.change.reason, c.change.cause) for c in result.commands] == [
        ("suppress", "hard_bounce", "nexuspromail:evt_2"),
        ("unsuppress", "manual:fixed", "admin:1"),
    ]
    assert result.index.keys(jane) == {"nexuspromail:evt_1", "nexuspromail:evt_2", "admin:1"}
    [(message_id, message)] = result.messages.items()
    assert message_id == "msg_01HX4Q2Z8K"
    assert (message.status, message.event_count, message.recipients) == ("bounced.hard", 2, (jane,))
    assert [r.reason for r in result.rejected] == [
        "invalid_json",
        "invalid_raw_record",
        "invalid_raw_record",
    ]
    assert all(r.detail for r in result.rejected)

    # An offset reset replays everything: same tables, no new command, the bad records
    # rejected again (they go to the DLQ, never dropped).
    tables, messages, commands = (
        dict(result.addresses),
        dict(result.messages),
        list(result.commands),
    )
    again = run_pipeline(records, POLICY, OPTIONS, result)
    assert (again.addresses, again.messages, again.commands) == (tables, messages, commands)
    assert [r.reason for r in again.rejected] == 2 * [
        "invalid_json",
        "invalid_raw_record",
        "invalid_raw_record",
    ]
