"""``OffsetGuard``: an agent sees each partition's records in offset order, without holes.

Why. Our input topics are neither compacted nor transactional, so the records of a partition
have consecutive offsets, and the raw-position dedupe (processors/transitions.py) relies
on seeing them in that order: it skips an input at or below the highest raw position
applied for its address. Faust does not guarantee it. Seen in this project's logs after a
worker restart: a stream got offset 0, then offset 14. Faust's stream iterator silently
skips records that reach it while its flow control is suspended (as it is around table
recovery) or that carry an older rebalance generation, and nothing fetches them again in
that generation. The records after the hole are applied; the skipped ones come back only
after the next restart, and the dedupe then refuses those that are older than an applied
one of the same address: an event lost, which the crash test caught, rarely. Faust's
commit only moves over contiguous acks (apart from tolerating a hole of one record right
after the committed offset, which it then commits past), so a hole also stalls the
partition's commits, which is how a raw-only replay used to stall.

What the guard does, per partition of one stream, per rebalance generation:

* it starts at the group's committed offset, read from the broker (the partition's first
  offset when nothing is committed);
* a record at the next expected offset is admitted, and the expected offset moves on;
* a record below it was seen before (a redelivery after a seek): admitted, the dedupe
  skips it;
* a record above it means a hole: the guard seeks the partition back to the expected
  offset and drops records until that offset comes (seeking again if it does not come
  within ``reseek_after_s``). A dropped record is never acked, so no offset past a hole is
  committed;
* a hole at the end of what the partition holds has no later record to reveal it: while
  the guard is entered (``async with``), a watcher seeks back any partition from which
  nothing came for ``quiet_s`` while the partition's end offset is past the expected one,
  provided the whole stream was quiet that long too (while other partitions' records
  arrive, a partition's records may just wait behind them in Faust's buffer: the bench
  saw that) or the partition was quiet for ``patience`` times longer;
* the watcher expects every assigned partition of the guarded topics from its committed
  offset, before any of its records comes: Faust drops the records its fetcher got under
  an older generation, and a partition none of whose records reach the agent (seen after
  a kill -9 and a restart: two of three raw partitions, for good) would otherwise never
  be judged at all. When the fetcher never saw such a partition's end offset, the watcher
  asks the broker.

If retention deleted the missing records before anyone read them, that is not a hole: the
guard goes on from the partition's first offset, with a warning.

A compacted topic (``compacted``: the suppression commands the delivery agent reads) has
holes by design, and Faust drops records there as anywhere: a hole is either. The guard
asks the broker (``PresentOffsets``, a reader of its own): if no record is left in the
hole, it goes on past it and tells Faust's commit so (``_add_gap``; Faust commits only
over contiguous offsets, and we switched off its own gap records with its read-offset
filter), else it seeks back as for any other topic. The same holds for a hole at the end.

Records admitted and then never committed are a stall the guard cannot mend, but it can
say so: when Faust's committed offset of a partition stays below the expected one, and
unchanged, for ``stuck_after_s`` while the worker is assigned and ready, the watcher logs
``commit_stalled`` once, with what Faust's commit works from (its committed offset, the
first acked offsets, the gaps, the in-flight messages of the partition and their shares).
Compacted topics are left out: Faust folds a gap into its commit only together with a
later ack, so a partition ending in a compacted hole stays uncommitted past it by design.

A consumer that never delivers the sought records again is stuck, and only a new process
gets it going: seen after all brokers of a cluster were stopped and started, when Faust's
commit waited on for good and no seek took effect. When a partition's expected offset
has not moved for ``stuck_after_s`` while the worker is assigned and ready and the broker
holds records past it, the watcher crashes the app with ``ConsumerStuck``; the worker
exits non-zero and its supervisor starts it again, from the committed offsets.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import TopicPartition

from processors.runtime.inflight import InFlight

log = structlog.get_logger("processors")

Partition = tuple[str, int]


class ConsumerStuck(RuntimeError):
    """A partition's records stopped reaching the agent while the broker holds them."""


class CommittedOffsets:
    """The consumer group's committed offset of a partition, as the broker has it.

    Read once per partition and rebalance generation. The partition is named in the
    request, so the broker answers for it (-1: nothing committed); a response without it
    carries a group-level error (aiokafka does not raise those), and the read is retried,
    as it is on a retriable client error (a broker down: the agent waits, it does not
    crash), for ``attempts`` x ``pause_s`` (30 s).

    One admin client serves every read for the worker's life, and a new one replaces it
    after a retriable error (it may have picked a node that is down). A client that
    starts fetches the metadata of every topic of the cluster, in pure Python: a client
    per read, with the guard reading every assigned partition after each rebalance, cost
    a worker seconds of CPU per start on a broker with a few thousand topics.
    """

    def __init__(
        self, bootstrap_servers: str, group_id: str, attempts: int = 150, pause_s: float = 0.2
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._group = group_id
        self._attempts = attempts
        self._pause_s = pause_s
        self._cache: dict[tuple[int, Partition], int | None] = {}
        self._admin: AIOKafkaAdminClient | None = None
        self._starting = asyncio.Lock()

    async def get(self, generation: int, topic: str, partition: int) -> int | None:
        """The committed offset, or None when nothing is committed; LookupError if the
        broker does not say (after ``attempts`` tries)."""
        key = (generation, (topic, partition))
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[0] == generation}
            self._cache[key] = await self._read(TopicPartition(topic, partition))
        return self._cache[key]

    async def _client(self) -> AIOKafkaAdminClient:
        async with self._starting:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
                try:
                    await admin.start()
                except BaseException:
                    await _closed(admin)
                    raise
                self._admin = admin
            return self._admin

    async def _replace(self, failed: AIOKafkaAdminClient | None) -> None:
        # Only the client that failed: another read may have replaced it already.
        if failed is not None and failed is self._admin:
            self._admin = None
            await _closed(failed)

    async def _read(self, tp: TopicPartition) -> int | None:
        for _ in range(self._attempts):
            admin: AIOKafkaAdminClient | None = None
            try:
                admin = await self._client()
                offsets = await admin.list_consumer_group_offsets(self._group, partitions=[tp])
            except KafkaError as exc:
                # A broker down or a coordinator moving: a new client asks another node.
                if not exc.retriable:
                    raise
                await self._replace(admin)
                await asyncio.sleep(self._pause_s)
                continue
            if tp in offsets:
                offset = offsets[tp].offset
                return offset if offset >= 0 else None
            await asyncio.sleep(self._pause_s)
        raise LookupError(f"the broker did not give {self._group}'s committed offset of {tp}")


async def _closed(admin: AIOKafkaAdminClient | None) -> None:
    if admin is not None:
        with contextlib.suppress(KafkaError):
            await admin.close()


@dataclass(frozen=True)
class Scan:
    """What a partition held when read: the offsets in [``start``, ``covered``) that hold a
    record, read at ``at`` (monotonic)."""

    start: int
    covered: int
    present: tuple[int, ...]
    at: float

    def hole(self, start: int, stop: int) -> bool | None:
        """True: no record in [start, stop); False: one at least; None: not read that far."""
        if start < self.start:
            return None
        i = bisect.bisect_left(self.present, start)
        if i < len(self.present) and self.present[i] < stop:
            return False
        return True if stop <= self.covered else None


class PresentOffsets:
    """Which offsets of a partition hold a record now, as the broker has it.

    A consumer of its own (no group, nothing committed, one partition at a time) reads
    from ``start`` until it reaches ``stop`` or finds a record before it. aiokafka moves
    its position past the last offset of each batch, records compacted away included, so
    a hole that reaches the end offset is read to its end too.
    """

    def __init__(self, bootstrap_servers: str, timeout_s: float = 10.0) -> None:
        self._bootstrap = bootstrap_servers
        self._timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def scan(self, tp: Any, start: int, stop: int) -> Scan:
        """LookupError when the broker does not say within ``timeout_s``."""
        async with self._lock:
            try:
                # Not ``wait_for``: on Python 3.11 it swallows a cancellation that comes as
                # the scan ends, and the guard's watcher loop would then never stop.
                async with asyncio.timeout(self._timeout_s):
                    return await self._scan(tp, start, stop)
            except (KafkaError, TimeoutError) as exc:
                await self._close()  # the next read starts a new consumer
                raise LookupError(f"{tp.topic}[{tp.partition}] from {start}: {exc!r}") from exc

    async def close(self) -> None:
        """Stop the consumer (a later ``scan`` starts another)."""
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    async def _scan(self, tp: Any, start: int, stop: int) -> Scan:
        if self._consumer is None:
            # "earliest": below the log start, the read starts there (it finds records,
            # and the guard's retention check takes over), never at the end.
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            self._consumer = consumer
        consumer = self._consumer
        tp = TopicPartition(tp.topic, tp.partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        present: list[int] = []
        while True:
            batch = await consumer.getmany(tp, timeout_ms=200, max_records=500)
            present.extend(r.offset for r in batch.get(tp, ()))
            position = await consumer.position(tp)
            if position >= stop or (present and present[0] < stop):
                return Scan(start, position, tuple(present), time.monotonic())


class _NoReadOffsets(dict[Any, Any]):
    """Stands in for Faust's ``Consumer._read_offset``, and never holds an offset.

    Faust's fetch loop drops each fetched record below the partition's "read offset" and
    records a "gap" (later treated as acked) when offsets jump. A seek resets the read
    offset, but a record the loop holds at that moment sets it forward again, and the
    records fetched anew from the seek position are then dropped. Seen here: after the
    guard sought a raw partition back to offset 1, none of the records from 1 reached the
    stream for 8 s, until the guard sought again. aiokafka already hands out each
    partition's records in order from its position, so we keep every record it gives and
    let ``OffsetGuard`` judge the order.
    """

    def __getitem__(self, key: Any) -> None:
        return None

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


def keep_every_fetched_record(consumer: Any) -> None:
    """Switch off Faust's read-offset filter on ``consumer`` (before its fetch loop starts)."""
    if not isinstance(consumer._read_offset, _NoReadOffsets):
        consumer._read_offset = _NoReadOffsets()


class OffsetGuard:
    """Admit a stream's events only in offset order per partition; seek back over holes."""

    def __init__(
        self,
        consumer: Any,
        committed: Any,
        name: str,
        topics: frozenset[str],
        compacted: frozenset[str] = frozenset(),
        present: PresentOffsets | None = None,
        reseek_after_s: float = 5.0,
        quiet_s: float = 5.0,
        patience: float = 12.0,
        stuck_after_s: float = 120.0,
        inflight: InFlight | None = None,
    ) -> None:
        # ``consumer``: Faust's Consumer (``seek_wait``, ``highwater``, ``earliest_offsets``);
        # ``committed``: a ``CommittedOffsets`` (``async get(generation, topic, partition)``).
        self._consumer = consumer
        self._committed = committed
        self._name = name
        # The topics guarded: their assigned partitions are watched, their records admitted
        # in order. A stream's records of other topics pass as they come: a compacted topic
        # read beside a hop topic has holes by design, which would be sought back for ever.
        self._topics = topics | compacted
        # Topics where a hole may be compaction, told apart by ``present`` (the broker).
        self._compacted = compacted
        if compacted and present is None:
            raise ValueError("a guard of compacted topics needs PresentOffsets")
        self._present = present
        self._scans: dict[Any, Scan] = {}
        self._reseek_after_s = reseek_after_s
        self._generation: int | None = None
        self._next: dict[Any, int] = {}
        self._first: dict[Any, int] = {}  # partition -> its expected offset at first
        self._seeking: dict[Any, float] = {}  # partition -> when we last sought it back
        self._last_seen: dict[Any, float] = {}  # partition -> when a record last came
        self._quiet_s = quiet_s
        self._patience = patience
        self._last_any = time.monotonic()  # when any record last came
        self._stuck_after_s = stuck_after_s
        # partition -> when it was first sought back since its expected offset last moved
        self._stalled_since: dict[Any, float] = {}
        # partition -> (Faust's committed offset, since when it is so while behind, logged)
        self._commit_frozen: dict[Any, tuple[int | None, float, bool]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._inflight = inflight
        self.holes = 0
        self.compacted_holes = 0
        self.commit_stalls = 0  # partitions logged as ``commit_stalled``

    async def __aenter__(self) -> OffsetGuard:
        self._watcher = asyncio.create_task(self._watch(), name=f"offsets:{self._name}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            # ``wait``, not ``await`` in a suppress(CancelledError), which would swallow a
            # cancellation of this exit too.
            await asyncio.wait([self._watcher])

    async def _watch(self) -> None:
        # A hole at the end of what a partition holds shows no later record to reveal it
        # (nor does a seek whose records got skipped again): every ``quiet_s`` seconds, a
        # partition from which nothing came for that long while its end offset is past
        # the expected offset is sought back.
        while True:
            await asyncio.sleep(self._quiet_s)
            try:
                await self.check_quiet_partitions()
            except ConsumerStuck as exc:
                log.error("consumer_stuck", stream=self._name, error=str(exc))
                await self._consumer.app.crash(exc)
                return
            except Exception as exc:
                # A broker error or a partition revoked mid-round: the next round tries
                # again. A watcher that ended would never judge a partition again.
                log.warning("offset_watch_failed", stream=self._name, error=repr(exc))

    async def check_quiet_partitions(self) -> None:
        """Seek back each quiet partition whose end offset is past the expected offset."""
        app = getattr(self._consumer, "app", None)
        if app is not None:
            if app.rebalancing or not app.tables.actives_ready:
                self._stalled_since.clear()  # recovering tables: records wait, by design
                self._commit_frozen.clear()
                return
            if app.consumer_generation_id != self._generation:
                self._new_generation(app.consumer_generation_id)
        generation = self._generation
        if generation is None:
            return  # no record yet and no app to say which generation this is
        await self._expect_assigned(generation)
        now = time.monotonic()
        self._watch_commits(now)
        stream_quiet = now - self._last_any >= self._quiet_s
        for tp, expected in list(self._next.items()):
            quiet_for = now - self._last_seen.get(tp, now)
            if quiet_for < (self._quiet_s if stream_quiet else self._quiet_s * self._patience):
                continue
            end = end_offset(self._consumer, tp)
            if end is None and tp in self._consumer.assignment():
                # Assigned, yet the fetcher never saw the partition's end: ask the broker.
                end = (await self._consumer.highwaters(tp)).get(tp)
            if not self._current(generation) or end is None or end <= expected:
                continue
            if tp.topic in self._compacted:
                hole = await self._compaction_hole(tp, expected, end)
                if not self._current(generation) or hole is None:
                    continue  # the broker did not say: the next round asks again
                if hole:
                    await self._past_hole(tp, expected, end)
                    continue
            earliest = await self._earliest(tp)
            if not self._current(generation):
                continue
            if earliest > expected:
                # Retention deleted those records unread: nothing to seek back to (each
                # seek would land at the log start, and the partition look stuck).
                self._warn("offsets_deleted_unread", tp, expected=expected, earliest=earliest)
                self._next[tp] = earliest
                continue
            stalled = now - self._stalled_since.get(tp, now)
            if stalled >= self._stuck_after_s:
                raise ConsumerStuck(
                    f"{tp.topic}[{tp.partition}]: no record from offset {expected} for "
                    f"{stalled:.0f} s, the broker holds up to {end}"
                )
            await self._seek_back(tp, expected, end, now)

    def _watch_commits(self, now: float) -> None:
        """Log ``commit_stalled`` once per partition whose admitted records have not been
        committed, Faust's committed offset unchanged, for ``stuck_after_s``."""
        committed_of = getattr(self._consumer, "_committed_offset", None)
        if committed_of is None:
            return
        for tp, expected in self._next.items():
            committed = committed_of.get(tp)
            # Faust holds None for "nothing committed" and for a committed 0 alike: then
            # nothing admitted in this generation is nothing behind.
            floor = committed if committed is not None else self._first.get(tp, expected)
            if tp.topic in self._compacted or floor >= expected:
                self._commit_frozen.pop(tp, None)
                continue
            frozen = self._commit_frozen.get(tp)
            if frozen is None or frozen[0] != committed:
                self._commit_frozen[tp] = (committed, now, False)
                continue
            _, since, logged = frozen
            if not logged and now - since >= self._stuck_after_s:
                self._warn(
                    "commit_stalled",
                    tp,
                    committed=committed,
                    expected=expected,
                    stalled_s=round(now - since),
                    **_commit_state(self._consumer, tp),
                )
                self._commit_frozen[tp] = (committed, since, True)
                self.commit_stalls += 1

    def _current(self, generation: int) -> bool:
        """Still the guard's generation, and no rebalance under way (after an await)."""
        app = getattr(self._consumer, "app", None)
        return generation == self._generation and not (app is not None and app.rebalancing)

    async def _expect_assigned(self, generation: int) -> None:
        # Each assigned partition of the guarded topics is expected from its committed
        # offset even before any of its records comes: Faust drops what its fetcher got
        # under an older generation, and a partition none of whose records ever reach the
        # agent would otherwise never be judged at all.
        now = time.monotonic()
        for tp in self._consumer.assignment():
            if tp.topic not in self._topics or tp in self._next:
                continue
            start = await self._committed_start(tp, generation)
            if start is None:
                continue  # no reference: this partition's first record sets its start
            if generation != self._generation:
                return  # another rebalance meanwhile: the next round takes it
            # ``admit`` may have set it meanwhile, from the same committed offset or past it.
            self._first.setdefault(tp, self._next.setdefault(tp, start))
            self._last_seen.setdefault(tp, now)

    def _new_generation(self, generation: int) -> None:
        self._generation = generation
        self._next.clear()
        self._first.clear()
        self._seeking.clear()
        self._stalled_since.clear()
        self._last_seen.clear()

    async def admit(self, event: Any) -> bool:
        """True: process ``event``. False: drop it (not acked: it comes again)."""
        if await self._admit(event):
            return True
        # Never acked: Faust's commit moves past a hole of one record, and one made of
        # a dropped record must stay open until the record comes again after the seek,
        # as a new message. So this share of the message is never given back, and Faust's
        # stop and rebalance must not wait for it (``InFlight``).
        if self._inflight is not None:
            self._inflight.abandon(event.message)
        return False

    async def _admit(self, event: Any) -> bool:
        message = event.message
        tp, offset = message.tp, message.offset
        if tp.topic not in self._topics:
            return True
        if message.generation_id != self._generation:
            # A rebalance: every stream restarts at its partitions' committed offsets.
            self._new_generation(message.generation_id)
        self._last_seen[tp] = self._last_any = time.monotonic()
        expected = self._next.get(tp)
        if expected is None:
            expected = await self._start_offset(tp, message.generation_id, offset)
            if message.generation_id != self._generation:
                return False  # a newer generation meanwhile: this record comes again
            expected = self._next.setdefault(tp, expected)
            self._first.setdefault(tp, expected)
        if offset < expected:
            return True  # seen before: the dedupe skips it
        if offset == expected:
            self._next[tp] = offset + 1
            self._seeking.pop(tp, None)
            self._stalled_since.pop(tp, None)
            return True
        if tp.topic in self._compacted:
            # Asked before the "seek under way" test: after a seek, the first record may
            # well be past a hole right at the expected offset.
            hole = await self._compaction_hole(tp, expected, offset)
            if message.generation_id != self._generation:
                return False  # a newer generation meanwhile: this record comes again
            if hole:
                await self._past_hole(tp, expected, offset)
                self._next[tp] = offset + 1
                return True
        sought_at = self._seeking.get(tp)
        now = time.monotonic()
        if sought_at is not None and now - sought_at < self._reseek_after_s:
            return False  # the seek is under way
        earliest = await self._earliest(tp)
        if message.generation_id != self._generation:
            return False  # a newer generation meanwhile: this record comes again
        if earliest > expected:
            # Not a hole: retention deleted those records before anyone read them.
            self._warn("offsets_deleted_unread", tp, expected=expected, earliest=earliest)
            self._next[tp] = earliest
            return await self._admit(event)
        await self._seek_back(tp, expected, offset, now)
        return False

    async def _compaction_hole(self, tp: Any, start: int, stop: int) -> bool | None:
        """Whether the broker holds no record in [start, stop) (None: it did not say).

        A read is reused for ``reseek_after_s``: a replay of a compacted partition meets a
        hole every few records, and one read covers hundreds of them. Not longer: the
        cleaner may remove more records meanwhile, and a stale read would then send the
        guard seeking back for a record that is gone.
        """
        assert self._present is not None  # __init__ requires it for compacted topics
        scan = self._scans.get(tp)
        hole = None
        if scan is not None and time.monotonic() - scan.at < self._reseek_after_s:
            hole = scan.hole(start, stop)
        if hole is None:
            try:
                scan = await self._present.scan(tp, start, stop)
            except LookupError as exc:
                self._warn("present_offsets_unknown", tp, start=start, error=str(exc))
                return None
            self._scans[tp] = scan
            hole = scan.hole(start, stop)
        return hole

    async def _past_hole(self, tp: Any, start: int, stop: int) -> None:
        """Go on at ``stop``, and let Faust's commit move over [start, stop)."""
        self.compacted_holes += 1
        self._next[tp] = stop
        self._seeking.pop(tp, None)
        self._stalled_since.pop(tp, None)
        await self._consumer._add_gap(tp, start, stop - 1)  # Faust: [start, stop - 1]

    async def _seek_back(self, tp: Any, expected: int, seen: int, now: float) -> None:
        if tp not in self._seeking:
            self.holes += 1
        self._warn(
            "offset_gap",
            tp,
            expected=expected,
            received=seen,
            action="seek_back",
            **_fetch_state(self._consumer, tp),
        )
        self._seeking[tp] = now
        self._stalled_since.setdefault(tp, now)
        self._last_seen[tp] = now
        # ``seek_wait`` runs the seek on the consumer's own thread (plain ``seek`` would
        # touch aiokafka from this one: seen to stall the partition for good).
        await self._consumer.seek_wait({tp: expected})

    async def _committed_start(self, tp: Any, generation: int) -> int | None:
        """The committed offset, or the partition's first offset when nothing is committed;
        None when the broker does not say."""
        try:
            committed = await self._committed.get(generation, tp.topic, tp.partition)
        except LookupError:
            return None
        return committed if committed is not None else await self._earliest(tp)

    async def _start_offset(self, tp: Any, generation: int, offset: int) -> int:
        start = await self._committed_start(tp, generation)
        if start is None:
            self._warn("committed_offset_unknown", tp, start=offset)
            return offset  # no reference: the first record sets the start
        return start

    def _warn(self, event: str, tp: Any, **details: object) -> None:
        log.warning(event, stream=self._name, topic=tp.topic, partition=tp.partition, **details)

    async def _earliest(self, tp: Any) -> int:
        earliest: dict[Any, int] = await self._consumer.earliest_offsets(tp)
        return earliest[tp]


def _fetch_state(consumer: Any, tp: Any) -> dict[str, bool]:
    """Whether Faust's fetcher asks for ``tp`` (a partition it paused or took out for a
    full buffer gets no records, whatever the seek): logged with each seek-back."""
    state: dict[str, bool] = {}
    for name, attribute in (
        ("fetching", "_active_partitions"),
        ("paused", "_paused_partitions"),
        ("buffer_full", "_buffered_partitions"),
    ):
        partitions = getattr(consumer, attribute, None)
        if partitions is not None:
            state[name] = tp in partitions
    return state


def _commit_state(consumer: Any, tp: Any, shown: int = 5) -> dict[str, object]:
    """What Faust's commit of ``tp`` works from (``consumer`` is Faust's Consumer): the
    first acked offsets above the committed one, the gaps it may move over, and the
    partition's in-flight messages (offset, shares left)."""
    acked = sorted(getattr(consumer, "_acked", {}).get(tp, ()))
    gaps = getattr(consumer, "_gap", {}).get(tp)
    in_flight = sorted(
        (m.offset, m.refcount)
        for m in list(getattr(consumer, "_unacked_messages", ()))
        if m.tp == tp
    )
    return {
        "acked": len(acked),
        "acked_first": acked[:shown],
        "gaps": sorted((i.begin, i.end) for i in gaps)[:shown] if gaps else [],
        "in_flight": len(in_flight),
        "in_flight_first": in_flight[:shown],
    }


def end_offset(consumer: Any, tp: Any) -> int | None:
    """The end offset of ``tp`` the fetcher last saw (None: unknown or not assigned now).

    Cached: no call to the consumer's thread, which would queue behind its fetches
    (``position`` did, and held the pipeline up to 5 s: event-to-command p99 went from
    0.4 to 5 s). ``consumer`` is Faust's Consumer.
    """
    try:
        end: int | None = consumer.highwater(tp)
    except (AssertionError, KafkaError, ConsumerStoppedError):  # not assigned now
        return None
    return end
