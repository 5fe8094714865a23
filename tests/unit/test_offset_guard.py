"""OffsetGuard: records are admitted in offset order per partition from the committed
offset; a hole makes it seek back to the missing offset and drop what follows until that
offset comes; records seen before pass (the dedupe skips them)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from aiokafka.errors import KafkaTimeoutError

from processors.runtime.inflight import InFlight
from processors.runtime.offsets import (
    ConsumerStuck,
    OffsetGuard,
    Scan,
    keep_every_fetched_record,
)


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass(eq=False)
class Message:
    tp: TP
    offset: int
    generation_id: int = 1
    refcount: int = 1  # the streams that have it and did not ack it yet
    acked: bool = False


@dataclass
class Event:
    message: Message


@dataclass
class Tables:
    actives_ready: bool = True


@dataclass
class App:
    """What the guard reads of Faust's app: the group generation and whether it is ready."""

    consumer_generation_id: int = 1
    rebalancing: bool = False
    tables: Tables = field(default_factory=Tables)


@dataclass
class Consumer:
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    earliest: int = 0
    positions: dict[TP, int] = field(default_factory=dict)
    assigned: set[TP] = field(default_factory=set)
    app: App | None = None
    broker_ends: dict[TP, int] = field(default_factory=dict)
    asked: list[TP] = field(default_factory=list)
    gaps: list[tuple[TP, int, int]] = field(default_factory=list)
    # Faust's: the messages handed out, waited for at a stop or rebalance until acked.
    _unacked_messages: set[Message] = field(default_factory=set)
    # Faust's commit state: the committed offset (next to read), the acked offsets.
    _committed_offset: dict[TP, int | None] = field(default_factory=dict)
    _acked: dict[TP, list[int]] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        """The broker's end offsets (``positions`` stands for what the fetcher saw)."""
        self.asked.extend(partitions)
        return {tp: self.broker_ends[tp] for tp in partitions if tp in self.broker_ends}

    def highwater(self, tp: TP) -> int | None:
        return self.positions.get(tp)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.extend(partitions.items())

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return dict.fromkeys(partitions, self.earliest)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust's: offsets [from, to] its commit may move over as if acked."""
        self.gaps.append((tp, offset_from, offset_to))


@dataclass
class Committed:
    """The group's committed offsets as the broker has them."""

    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    reads: list[int] = field(default_factory=list)
    unknown: bool = False

    async def get(self, generation: int, topic: str, partition: int) -> int | None:
        self.reads.append(generation)
        if self.unknown:
            raise LookupError("no answer")
        return self.offsets.get((topic, partition))


P0, P1 = TP("email.events", 0), TP("email.events", 1)
TOPICS = frozenset({"email.events"})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The guard's monotonic clock, at 100 s until a test moves it (``clock[0] += ...``)."""
    now = [100.0]
    monkeypatch.setattr("processors.runtime.offsets.time.monotonic", lambda: now[0])
    return now


def ev(tp: TP, offset: int, generation: int = 1) -> Any:
    return Event(Message(tp, offset, generation))


def guard_for(committed: dict[TP, int], earliest: int = 0) -> tuple[OffsetGuard, Consumer]:
    consumer = Consumer(earliest=earliest)
    offsets = Committed({(tp.topic, tp.partition): o for tp, o in committed.items()})
    return OffsetGuard(consumer, offsets, "t", TOPICS), consumer


async def admitted(guard: OffsetGuard, events: list[Any]) -> list[int]:
    return [e.message.offset for e in events if await guard.admit(e)]


async def test_contiguous_records_from_the_committed_offset_pass() -> None:
    guard, consumer = guard_for({P0: 10})
    assert await admitted(guard, [ev(P0, 10), ev(P0, 11), ev(P0, 12)]) == [10, 11, 12]
    assert consumer.seeks == []


async def test_a_hole_seeks_back_and_drops_until_the_missing_offset_comes() -> None:
    guard, consumer = guard_for({P0: 10})
    # 11 never arrives: 12 and 13 are dropped, the partition is sought back to 11 once.
    assert await admitted(guard, [ev(P0, 10), ev(P0, 12), ev(P0, 13)]) == [10]
    assert consumer.seeks == [(P0, 11)]
    assert guard.holes == 1
    # After the seek the records come again from 11, and pass.
    assert await admitted(guard, [ev(P0, 11), ev(P0, 12), ev(P0, 13)]) == [11, 12, 13]


async def test_a_hole_right_after_the_committed_offset_is_caught() -> None:
    # Faust would commit past a hole of one record here (min(acked) - committed == 1).
    guard, consumer = guard_for({P0: 10})
    assert await admitted(guard, [ev(P0, 11)]) == []
    assert consumer.seeks == [(P0, 10)]


async def test_records_ahead_of_the_committed_offset_wait_for_the_earlier_ones() -> None:
    # After a rebalance Faust can resume a stream where its fetcher stood (ahead) before
    # it seeks to the committed offset: applying 130 before 100 would make the raw-position
    # dedupe refuse 100..129 for the same address.
    guard, consumer = guard_for({P0: 100})
    assert await admitted(guard, [ev(P0, 130), ev(P0, 131)]) == []
    assert consumer.seeks == [(P0, 100)]
    assert await admitted(guard, [ev(P0, 100), ev(P0, 101)]) == [100, 101]


async def test_records_below_the_expected_offset_pass() -> None:
    # Records from before the committed offset (the fetcher's old position) or a
    # redelivery after a seek: the dedupe skips them; they do not move the expected offset.
    guard, consumer = guard_for({P0: 117})
    assert await admitted(guard, [ev(P0, 0), ev(P0, 1), ev(P0, 117), ev(P0, 118)]) == [
        0,
        1,
        117,
        118,
    ]
    assert await admitted(guard, [ev(P0, 117), ev(P0, 118), ev(P0, 119)]) == [117, 118, 119]
    assert consumer.seeks == []


async def test_partitions_are_independent() -> None:
    guard, consumer = guard_for({P0: 5, P1: 7})
    assert await admitted(guard, [ev(P0, 5), ev(P1, 9), ev(P0, 6), ev(P1, 7)]) == [5, 6, 7]
    assert consumer.seeks == [(P1, 7)]


async def test_a_rebalance_restarts_from_the_newly_committed_offset() -> None:
    consumer = Consumer()
    committed = Committed({("email.events", 0): 3})
    guard = OffsetGuard(consumer, committed, "t", TOPICS)
    assert await admitted(guard, [ev(P0, 3), ev(P0, 4)]) == [3, 4]
    # Another worker had the partition meanwhile and committed 40.
    committed.offsets[("email.events", 0)] = 40
    assert await admitted(guard, [ev(P0, 40, generation=2), ev(P0, 41, generation=2)]) == [40, 41]
    assert consumer.seeks == []
    assert committed.reads == [1, 2]


async def test_when_the_broker_does_not_say_the_first_record_sets_the_start() -> None:
    consumer = Consumer()
    guard = OffsetGuard(consumer, Committed(unknown=True), "t", TOPICS)
    assert await admitted(guard, [ev(P0, 7), ev(P0, 8), ev(P0, 10)]) == [7, 8]
    assert consumer.seeks == [(P0, 9)]


async def test_without_a_committed_offset_it_starts_at_the_partitions_first_offset() -> None:
    guard, consumer = guard_for({}, earliest=0)
    assert await admitted(guard, [ev(P0, 2), ev(P0, 0), ev(P0, 1), ev(P0, 2)]) == [0, 1, 2]
    assert consumer.seeks == [(P0, 0)]


async def test_records_deleted_by_retention_are_not_a_hole() -> None:
    # Committed 10, but retention removed everything below 50 while no one read it.
    guard, consumer = guard_for({P0: 10}, earliest=50)
    assert await admitted(guard, [ev(P0, 50), ev(P0, 51)]) == [50, 51]
    assert consumer.seeks == []
    # A real hole above the log start is still one.
    assert await admitted(guard, [ev(P0, 53)]) == []
    assert consumer.seeks == [(P0, 52)]


async def test_it_seeks_again_when_the_missing_offset_does_not_come(clock: list[float]) -> None:
    now = clock
    guard, consumer = guard_for({P0: 0})
    assert await admitted(guard, [ev(P0, 2), ev(P0, 3)]) == []
    assert consumer.seeks == [(P0, 0)]
    now[0] += 6
    assert await admitted(guard, [ev(P0, 4)]) == []
    assert consumer.seeks == [(P0, 0), (P0, 0)]
    assert guard.holes == 1


def test_the_consumer_keeps_no_read_offset() -> None:
    # Faust drops fetched records below a partition's read offset; we switch that off.
    @dataclass
    class FaustConsumer:
        _read_offset: Any = field(default_factory=dict)

    consumer = FaustConsumer({P0: 40})
    keep_every_fetched_record(consumer)
    consumer._read_offset[P0] = 50
    consumer._read_offset.update({P1: 60})
    assert consumer._read_offset[P0] is None
    assert consumer._read_offset[P1] is None
    assert consumer._read_offset.pop(P0, None) is None
    assert P0 not in consumer._read_offset


async def test_a_hole_at_the_tail_is_sought_back_when_the_partition_stays_quiet(
    clock: list[float],
) -> None:
    # 11 and 12 were fetched (position 13) but never reached the agent, and no later
    # record comes to reveal the hole.
    now = clock
    guard, consumer = guard_for({P0: 10, P1: 0})
    assert await admitted(guard, [ev(P0, 10), ev(P1, 0)]) == [10, 0]
    consumer.positions = {P0: 13, P1: 1}
    await guard.check_quiet_partitions()
    assert consumer.seeks == []  # not quiet for long enough yet
    now[0] += 6
    await guard.check_quiet_partitions()
    assert consumer.seeks == [(P0, 11)]  # P1 is quiet too, but has nothing more
    assert await admitted(guard, [ev(P0, 11), ev(P0, 12)]) == [11, 12]


async def test_the_watcher_runs_while_the_guard_is_entered() -> None:
    consumer = Consumer(positions={P0: 5})
    guard = OffsetGuard(consumer, Committed({("email.events", 0): 3}), "t", TOPICS, quiet_s=0.01)
    assert await admitted(guard, [ev(P0, 3)]) == [3]
    async with guard:
        for _ in range(100):
            if consumer.seeks:
                break
            await asyncio.sleep(0.01)
    assert consumer.seeks[0] == (P0, 4)


async def test_a_partition_waiting_behind_others_is_not_sought_back_too_soon(
    clock: list[float],
) -> None:
    # P0's records (11, 12) sit in Faust's buffer behind P1's: P1 keeps the stream busy.
    now = clock
    guard, consumer = guard_for({P0: 10, P1: 0})
    assert await admitted(guard, [ev(P0, 10)]) == [10]
    consumer.positions = {P0: 13, P1: 100}
    for offset in range(30):
        now[0] += 1
        assert await admitted(guard, [ev(P1, offset)]) == [offset]
        await guard.check_quiet_partitions()
    assert consumer.seeks == []
    # ... but not forever: after ``patience`` x ``quiet_s`` (60 s) it is sought back.
    for offset in range(30, 62):
        now[0] += 1
        assert await admitted(guard, [ev(P1, offset)]) == [offset]
        await guard.check_quiet_partitions()
    assert consumer.seeks == [(P0, 11)]


async def test_a_partition_whose_seeks_never_deliver_is_declared_stuck(clock: list[float]) -> None:
    # The broker holds 11..19 but no seek brings them: after ``stuck_after_s`` the watcher
    # gives up on this consumer (the app crashes, the supervisor starts a new process).
    now = clock
    guard, consumer = guard_for({P0: 10})
    assert await admitted(guard, [ev(P0, 10)]) == [10]
    consumer.positions = {P0: 20}
    for _ in range(23):  # 23 x 5 s: sought back again and again, under 120 s stalled
        now[0] += 5
        await guard.check_quiet_partitions()
    assert len(consumer.seeks) > 10
    now[0] += 10
    with pytest.raises(ConsumerStuck, match=r"no record from offset 11 for 1\d\d s"):
        await guard.check_quiet_partitions()


async def test_a_record_at_the_expected_offset_ends_the_stall(clock: list[float]) -> None:
    now = clock
    guard, consumer = guard_for({P0: 10})
    consumer.positions = {P0: 20}
    assert await admitted(guard, [ev(P0, 10), ev(P0, 15)]) == [10]  # a hole: sought back
    now[0] += 1000
    assert await admitted(guard, [ev(P0, 11)]) == [11]  # the seek delivered
    now[0] += 6
    await guard.check_quiet_partitions()  # quiet again: sought back, not stuck
    assert consumer.seeks == [(P0, 11), (P0, 12)]


async def test_after_a_rebalance_without_records_assigned_partitions_are_still_watched(
    clock: list[float],
) -> None:
    # Generation 2 assigned P0 (committed 11, the broker holds up to 20) and a partition of
    # another stream, and none of P0's records reached the agent: its expected offset comes
    # from the committed one, it is sought back when quiet, and declared stuck in the end.
    now = clock
    other = TP("message.events", 0)
    app = App(consumer_generation_id=2)
    consumer = Consumer(positions={P0: 20, other: 5}, assigned={P0, other}, app=app)
    committed = Committed({("email.events", 0): 10})
    guard = OffsetGuard(consumer, committed, "t", TOPICS)
    assert await admitted(guard, [ev(P0, 10, generation=1)]) == [10]  # generation 1's
    committed.offsets[("email.events", 0)] = 11
    app.rebalancing = True
    await guard.check_quiet_partitions()
    assert committed.reads == [1]  # nothing is judged while the rebalance runs
    app.rebalancing = False
    await guard.check_quiet_partitions()
    assert committed.reads == [1, 2]
    now[0] += 6
    await guard.check_quiet_partitions()
    assert consumer.seeks == [(P0, 11)]
    for _ in range(23):  # under 120 s stalled: sought back again and again
        now[0] += 5
        await guard.check_quiet_partitions()
    now[0] += 5
    with pytest.raises(ConsumerStuck, match=r"email.events\[0\]: no record from offset 11"):
        await guard.check_quiet_partitions()
    assert {tp for tp, _ in consumer.seeks} == {P0}


async def test_records_admitted_while_the_watcher_reads_an_offset_keep_their_progress() -> None:
    # The watcher's read of P0's committed offset is slow; meanwhile the agent admits 10
    # and 11 (its own read of the same offset). The watcher's late answer must not set
    # P0 back to 10.
    release = asyncio.Event()

    @dataclass
    class SlowCommitted(Committed):
        async def get(self, generation: int, topic: str, partition: int) -> int | None:
            if len(self.reads) == 0:
                self.reads.append(generation)
                await release.wait()
                return self.offsets.get((topic, partition))
            return await super().get(generation, topic, partition)

    app = App(consumer_generation_id=2)
    consumer = Consumer(positions={P0: 12}, assigned={P0}, app=app)
    guard = OffsetGuard(consumer, SlowCommitted({("email.events", 0): 10}), "t", TOPICS)
    watching = asyncio.create_task(guard.check_quiet_partitions())
    await asyncio.sleep(0)
    assert await admitted(guard, [ev(P0, 10, generation=2), ev(P0, 11, generation=2)]) == [10, 11]
    release.set()
    await watching
    assert await admitted(guard, [ev(P0, 12, generation=2)]) == [12]
    assert consumer.seeks == []


async def test_the_watcher_does_not_seek_to_records_retention_deleted(clock: list[float]) -> None:
    # Committed 10, but the log now starts at 50 and ends at 60 and nothing comes: the
    # watcher moves on to 50 instead of seeking to 10 for ever (and calling it stuck).
    now = clock
    app = App(consumer_generation_id=1)
    consumer = Consumer(earliest=50, positions={P0: 60}, assigned={P0}, app=app)
    guard = OffsetGuard(consumer, Committed({("email.events", 0): 10}), "t", TOPICS)
    await guard.check_quiet_partitions()
    now[0] += 6
    await guard.check_quiet_partitions()
    assert consumer.seeks == []
    now[0] += 6
    await guard.check_quiet_partitions()
    assert consumer.seeks == [(P0, 50)]


async def test_a_failed_round_does_not_end_the_watcher() -> None:
    # A broker error in one round (the committed offset unreadable) is logged; the next
    # round seeks back as usual.
    @dataclass
    class FlakyCommitted(Committed):
        async def get(self, generation: int, topic: str, partition: int) -> int | None:
            self.reads.append(generation)
            if len(self.reads) == 1:
                raise KafkaTimeoutError
            return self.offsets.get((topic, partition))

    app = App(consumer_generation_id=1)
    consumer = Consumer(positions={P0: 5}, assigned={P0}, app=app)
    committed = FlakyCommitted({("email.events", 0): 3})
    guard = OffsetGuard(consumer, committed, "t", TOPICS, quiet_s=0.01)
    async with guard:
        for _ in range(300):
            if consumer.seeks:
                break
            await asyncio.sleep(0.01)
    assert len(committed.reads) >= 2
    assert consumer.seeks[0] == (P0, 3)


@dataclass
class Present:
    """The offsets of the compacted topic that still hold a record, as the broker has them
    (``PresentOffsets``); reads up to ``stop``, or ``ahead`` offsets past it."""

    offsets: set[int]
    ahead: int = 0
    scans: list[tuple[int, int]] = field(default_factory=list)
    unknown: bool = False

    async def scan(self, tp: TP, start: int, stop: int) -> Scan:
        self.scans.append((start, stop))
        if self.unknown:
            raise LookupError("no answer")
        covered = stop + self.ahead
        present = tuple(sorted(o for o in self.offsets if start <= o < covered))
        return Scan(start, covered, present, time.monotonic())


C0 = TP("suppression.commands", 0)


def compacted_guard(
    committed: int, present: Present, **kwargs: Any
) -> tuple[OffsetGuard, Consumer]:
    consumer = kwargs.pop("consumer", None) or Consumer()
    offsets = Committed({(C0.topic, C0.partition): committed})
    compacted = frozenset({C0.topic})
    guard = OffsetGuard(consumer, offsets, "t", TOPICS, compacted, present, **kwargs)  # type: ignore[arg-type]
    return guard, consumer


async def test_a_compaction_hole_is_passed_and_told_to_faust_commit() -> None:
    guard, consumer = compacted_guard(0, Present({0, 3, 4}))
    assert await admitted(guard, [ev(C0, 0), ev(C0, 3), ev(C0, 4)]) == [0, 3, 4]
    assert consumer.seeks == []
    assert consumer.gaps == [(C0, 1, 2)]  # Faust may commit over 1 and 2
    assert (guard.holes, guard.compacted_holes) == (0, 1)


async def test_a_record_dropped_from_a_compacted_topic_is_sought_back() -> None:
    # 1 and 2 are still on the broker: the hole is Faust's, not compaction's.
    guard, consumer = compacted_guard(0, Present({0, 1, 2, 3}))
    assert await admitted(guard, [ev(C0, 0), ev(C0, 3)]) == [0]
    assert consumer.seeks == [(C0, 1)]
    assert consumer.gaps == []
    assert await admitted(guard, [ev(C0, 1), ev(C0, 2), ev(C0, 3)]) == [1, 2, 3]


async def test_after_a_seek_the_first_record_past_a_compaction_hole_passes() -> None:
    # Sought back to 1 for a dropped record; the broker's next record there is 5 (2..4
    # compacted away): not "a seek under way", a hole.
    present = Present({0, 1, 5, 6})
    guard, consumer = compacted_guard(0, present)
    assert await admitted(guard, [ev(C0, 0), ev(C0, 6)]) == [0]
    assert consumer.seeks == [(C0, 1)]
    assert await admitted(guard, [ev(C0, 1), ev(C0, 5), ev(C0, 6)]) == [1, 5, 6]
    assert consumer.gaps == [(C0, 2, 4)]


async def test_one_read_of_the_broker_serves_the_holes_it_covers(clock: list[float]) -> None:
    now = clock
    present = Present({0, 2, 4, 6, 8, 20}, ahead=10)
    guard, consumer = compacted_guard(0, present)
    for offset in (0, 2, 4, 6, 8):
        assert await admitted(guard, [ev(C0, offset)]) == [offset]
    assert present.scans == [(1, 2)]  # the first read covered up to 12
    now[0] += 6  # a read that old may be stale: the cleaner may have removed more since
    assert await admitted(guard, [ev(C0, 20)]) == [20]
    assert present.scans == [(1, 2), (9, 20)]
    assert consumer.seeks == []
    assert len(consumer.gaps) == 5


async def test_when_the_broker_does_not_say_a_compacted_hole_is_sought_back() -> None:
    guard, consumer = compacted_guard(0, Present({0, 3}, unknown=True))
    assert await admitted(guard, [ev(C0, 0), ev(C0, 3)]) == [0]
    assert consumer.seeks == [(C0, 1)]
    assert consumer.gaps == []


async def test_a_compaction_hole_at_the_end_is_passed_by_the_watcher(clock: list[float]) -> None:
    # The partition ends at 5, its last record is 2 (3 and 4 compacted away): no seek.
    now = clock
    app = App(consumer_generation_id=1)
    consumer = Consumer(positions={C0: 5}, assigned={C0}, app=app)
    guard, _ = compacted_guard(0, Present({0, 1, 2}), consumer=consumer)
    assert await admitted(guard, [ev(C0, 0), ev(C0, 1), ev(C0, 2)]) == [0, 1, 2]
    now[0] += 6
    await guard.check_quiet_partitions()
    assert consumer.seeks == []
    assert consumer.gaps == [(C0, 3, 4)]
    now[0] += 6
    await guard.check_quiet_partitions()  # caught up now: nothing more to judge
    assert consumer.gaps == [(C0, 3, 4)]


async def test_a_compacted_partition_none_of_whose_records_come_is_sought_back(
    clock: list[float],
) -> None:
    # Committed 1, the broker holds 1..11, none reach the agent (Faust dropped them with
    # an old generation): the watcher seeks back to 1, and the records then pass.
    now = clock
    app = App(consumer_generation_id=1)
    consumer = Consumer(positions={C0: 12}, assigned={C0}, app=app)
    guard, _ = compacted_guard(1, Present(set(range(12))), consumer=consumer)
    await guard.check_quiet_partitions()
    now[0] += 6
    await guard.check_quiet_partitions()
    assert consumer.seeks == [(C0, 1)]
    assert await admitted(guard, [ev(C0, o) for o in range(1, 12)]) == list(range(1, 12))
    assert consumer.gaps == []


def test_a_guard_of_compacted_topics_needs_the_broker_reader() -> None:
    with pytest.raises(ValueError, match="PresentOffsets"):
        OffsetGuard(Consumer(), Committed(), "t", TOPICS, frozenset({C0.topic}))


def test_a_scan_says_only_what_it_read() -> None:
    scan = Scan(start=10, covered=20, present=(10, 14, 19), at=0.0)
    assert scan.hole(11, 14) is True
    assert scan.hole(11, 15) is False
    assert scan.hole(15, 19) is True
    assert scan.hole(15, 21) is False  # 19 is before 21
    assert scan.hole(20, 25) is None  # past what was read
    assert scan.hole(5, 9) is None  # before it


async def test_records_of_unguarded_topics_pass_as_they_come() -> None:
    # A compacted topic read beside the hop topic: its offsets have holes by design.
    guard, consumer = guard_for({P0: 10})
    commands = TP("suppression.commands", 0)
    assert await admitted(guard, [ev(commands, 7), ev(commands, 3), ev(P0, 10)]) == [7, 3, 10]
    assert consumer.seeks == []


async def test_an_assigned_partition_none_of_whose_records_come_is_watched(
    clock: list[float],
) -> None:
    # P0's records come in generation 1; P1 is assigned too, but none of its records ever
    # reach the agent and the fetcher never saw its end: the broker is asked, and P1 is
    # sought back to its committed offset.
    now = clock
    app = App(consumer_generation_id=1)
    consumer = Consumer(positions={P0: 3}, assigned={P0, P1}, app=app, broker_ends={P1: 9})
    guard = OffsetGuard(consumer, Committed({("email.events", 1): 4}), "t", TOPICS)
    assert await admitted(guard, [ev(P0, 0), ev(P0, 1), ev(P0, 2)]) == [0, 1, 2]
    await guard.check_quiet_partitions()
    assert consumer.seeks == []
    now[0] += 6
    await guard.check_quiet_partitions()
    assert consumer.asked == [P1]
    assert consumer.seeks == [(P1, 4)]
    assert await admitted(guard, [ev(P1, 4), ev(P1, 5)]) == [4, 5]


async def test_a_dropped_record_is_not_waited_for_at_a_stop() -> None:
    # Faust's stop waits for every message handed out until it is acked; a dropped one
    # never is. It leaves the set without an ack once no other agent still works on it.
    consumer = Consumer()
    inflight = InFlight(SimpleNamespace(consumer=consumer))
    guard = OffsetGuard(
        consumer, Committed({(P0.topic, P0.partition): 10}), "t", TOPICS, inflight=inflight
    )
    alone, shared = ev(P0, 12), ev(P0, 13)
    shared.message.refcount = 2  # the address agent works on it too
    given = [ev(P0, 10), alone, shared]
    consumer._unacked_messages.update(e.message for e in given)
    assert await admitted(guard, given) == [10]
    assert consumer._unacked_messages == {given[0].message, shared.message}
    shared.message.refcount = 1  # the address agent acked its share
    inflight.release_abandoned()
    assert consumer._unacked_messages == {given[0].message}
    assert not alone.message.acked  # no commit past the hole
    assert not shared.message.acked


async def test_admitted_records_left_uncommitted_are_logged_once_as_a_stalled_commit(
    clock: list[float],
) -> None:
    now = clock
    guard, consumer = guard_for({P0: 10})
    consumer.positions = {P0: 13}
    assert await admitted(guard, [ev(P0, 10), ev(P0, 11), ev(P0, 12)]) == [10, 11, 12]
    consumer._committed_offset[P0] = 10  # 10 never acked: 11 and 12 cannot be committed
    consumer._acked[P0] = [12, 11]
    consumer._unacked_messages.add(Message(P0, 10))
    for _ in range(23):  # 115 s
        now[0] += 5
        await guard.check_quiet_partitions()
    assert guard.commit_stalls == 0
    now[0] += 10
    await guard.check_quiet_partitions()
    assert guard.commit_stalls == 1
    for _ in range(30):
        now[0] += 5
        await guard.check_quiet_partitions()
    assert guard.commit_stalls == 1  # once per stall
    assert consumer.seeks == []  # nothing to seek: every record came


async def test_commits_that_keep_moving_or_have_nothing_to_commit_are_no_stall(
    clock: list[float],
) -> None:
    now = clock
    guard, consumer = guard_for({P0: 0, P1: 0})
    consumer.positions = {P0: 100, P1: 0}
    # P1: nothing admitted, and Faust holds None (nothing committed, or a committed 0).
    consumer.assigned = {P1}
    for offset in range(60):  # P0's commits follow its records, a few behind
        now[0] += 5
        assert await admitted(guard, [ev(P0, offset)]) == [offset]
        consumer._committed_offset[P0] = max(0, offset - 3) or None
        await guard.check_quiet_partitions()
    assert guard.commit_stalls == 0
