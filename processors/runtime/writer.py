"""Durable, ordered table writes for the stateful agents.

Why not ``table[key] = value``: Faust writes RocksDB at once and puts the changelog
record in its producer buffer, and the offset commit does not reliably wait for that
buffer. So an offset could be committed for an event whose new state never reached the
changelog, and the local store could hold a state the changelog never got.

``OrderedWriter`` replaces that path. For every event, in the order the agent took them:

1. the agent computes the event's writes (state record and index entries) and sends its
   suppression commands without waiting; the writes are *staged* in the ``TableStore``
   (the next event reads them) and the event is handed to the writer;
2. the writer waits until those commands are acknowledged, then sends the changelog
   records straight to the producer (partition = the event's partition, as Faust does);
3. once they are acknowledged it writes them to RocksDB with their changelog offset
   (``TableStore.persist``), then acks the source event.

A write that no consumed event carries (the outcome of a webhook delivery attempt) goes
through the same queue (``write_detached``), so that each partition's RocksDB store is
written, with its changelog offset, in changelog order whoever wrote: two writers on one
table could persist a later offset before an earlier record, and a restart would then
skip that record.

Faust commits only acked offsets, so a committed offset always means "this event's
commands and state are on the broker": a crash can repeat a command, never lose one,
and never lose a state write (DESIGN.md §3). And the local store only ever holds what the
changelog holds, so a restarted worker keeps it (runtime/store.py). Events are
pipelined: one event's broker round trip does not hold up the next. A rebalance waits
until every event is acked (Faust's ``stream_wait_empty``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import faust
import structlog

from processors.runtime.offsets import OffsetGuard
from processors.runtime.store import TableStore, Write

log = structlog.get_logger("processors")

Ack = Awaitable[Any]


class Changelog(Protocol):
    """The part of a Faust changelog topic the writer sends to."""

    async def send(
        self, *, key: bytes, value: bytes | None, partition: int, **options: Any
    ) -> Awaitable[Any]: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    event: faust.EventT[bytes] | None  # None: a detached write (``write_detached``)
    partition: int
    writes: Sequence[Write]  # empty: nothing to write, only ack in order
    staged_id: int
    commands: Sequence[Ack]
    last: bool  # the event's last entry: ack the event once it is durable
    done: asyncio.Future[None] | None = None  # a detached write's: resolved once durable


# Called with (partition, writes) once an event's writes are in RocksDB.
Persisted = Callable[[int, Sequence[Write]], None]


@dataclass(frozen=True, slots=True)
class _Record:
    """One changelog record of a group: the last value of its key in the group."""

    partition: int
    key: bytes
    value: bytes | None
    staged_id: int  # of the entry that wrote this value (see ``TableStore.persist``)


@dataclass(slots=True)
class _Group:
    """Consecutive entries made durable together: one record per key, one batch."""

    entries: list[_Entry]
    records: list[_Record]
    written: list[Ack]


def coalesce(entries: Sequence[_Entry]) -> list[_Record]:
    """One record per key with its last value, at the position of the key's *first* write.

    An input's writes are ordered so that a crash after any prefix of them stays exact
    (processors/step.py: the state record before the input's dedupe entry). Coalescing
    keeps that for every input of the group: a key's record sits where the group first
    wrote it, so a state record still precedes the dedupe entry of every input it
    includes; and no input of the group is acked before the whole group is durable.
    """
    last = {
        key: _Record(entry.partition, key, value, entry.staged_id)
        for entry in entries
        for key, value in entry.writes
    }
    ordered: list[_Record] = []
    for entry in entries:
        for key, _ in entry.writes:
            record = last.pop(key, None)
            if record is not None:
                ordered.append(record)
    return ordered


class OrderedWriter:
    """Makes each event's writes durable after its commands, and acks events in order.

    Use one per agent, inside the agent's coroutine::

        async with OrderedWriter(app, store, changelog, stream, guard) as writer:
            async for event in writer.events():
                ...
                await writer.write(event, writes, command_acks, last=True)
    """

    def __init__(
        self,
        app: faust.App,
        store: TableStore,
        changelog: Changelog,
        stream: faust.StreamT[bytes],
        guard: OffsetGuard | None = None,
        max_pending: int = 1000,
        max_group: int = 500,
        on_persisted: Persisted | None = None,
    ) -> None:
        self._app = app
        self._store = store
        self._changelog = changelog
        # Events are acked by the writer, not by the iteration (``noack``).
        self._stream = cast(faust.Stream[bytes], stream).noack()
        self._guard = guard
        self._max_in_flight = max_pending
        self._max_group = max_group
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue(maxsize=max_pending)
        self._task: asyncio.Task[None] | None = None
        self._on_persisted = on_persisted

    async def __aenter__(self) -> OrderedWriter:
        if self._guard is not None:
            await self._guard.__aenter__()
        self._task = asyncio.create_task(self._run(), name=f"writer:{self._store.name}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._guard is not None:
            await self._guard.__aexit__(*exc_info)
        # Events still queued are not acked: they are processed again after a restart.
        while not self._queue.empty():
            entry = self._queue.get_nowait()
            if entry.done is not None and not entry.done.done():
                entry.done.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task  # its failure, if any, was logged and crashed the worker

    async def events(self) -> AsyncIterator[faust.EventT[bytes]]:
        """The agent's events, in offset order without holes (``OffsetGuard``); each must
        then go to ``write`` or ``skip``."""
        async for event in self._stream.events():
            if self._guard is None or await self._guard.admit(event):
                yield event

    async def write(
        self,
        event: faust.EventT[bytes],
        writes: Sequence[Write],
        commands: Sequence[Ack] = (),
        *,
        last: bool,
    ) -> None:
        """Stage ``writes`` now; make them durable after ``commands``; then, if ``last``,
        ack ``event``.

        An event that carries several inputs (a batch record) has one write per input,
        each staged at once so the next input reads it, all with ``last=False``, then a
        ``skip``: the event is acked once, after all of them are durable."""
        staged_id = self._store.stage(writes)
        await self._put(_Entry(event, event.message.partition, writes, staged_id, commands, last))

    async def skip(self, event: faust.EventT[bytes]) -> None:
        """Ack ``event`` (nothing more to write) once every earlier write is durable."""
        await self._put(_Entry(event, event.message.partition, (), 0, (), True))

    async def write_detached(self, partition: int, writes: Sequence[Write]) -> asyncio.Future[None]:
        """Stage ``writes`` to ``partition`` now, on behalf of no event; they become durable
        in order with everything queued before them. The future resolves once they are
        (cancelled if the writer stops first)."""
        staged_id = self._store.stage(writes)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._put(_Entry(None, partition, writes, staged_id, (), True, done))
        return done

    async def _put(self, entry: _Entry) -> None:
        if self._task is not None and self._task.done():
            raise RuntimeError("the table writer has stopped") from self._task.exception()
        await self._queue.put(entry)

    async def _run(self) -> None:
        in_flight: deque[_Group] = deque()
        events_in_flight = 0
        try:
            while True:
                if in_flight and (self._queue.empty() or events_in_flight >= self._max_in_flight):
                    events_in_flight -= await self._finish_oldest(in_flight)
                    continue
                group = await self._next_group()
                for entry in group:
                    for command in entry.commands:
                        await command
                records = coalesce(group)
                written = [
                    await self._changelog.send(
                        key=r.key,
                        value=r.value,
                        partition=r.partition,
                        key_serializer="raw",
                        value_serializer="raw",
                    )
                    for r in records
                ]
                in_flight.append(_Group(group, records, written))
                events_in_flight += len(group)
                while in_flight and all(_done(ack) for ack in in_flight[0].written):
                    events_in_flight -= await self._finish_oldest(in_flight)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A command or changelog record the producer could not deliver: staged
            # writes can no longer become durable in order, so this worker must not go
            # on. Its events are unacked; a restart reads them again.
            log.exception("table_write_failed", table=self._store.name)
            await self._app.crash(exc)
            raise

    async def _next_group(self) -> list[_Entry]:
        """The next entry and every entry queued behind it, up to ``max_group``."""
        group = [await self._queue.get()]
        while len(group) < self._max_group and not self._queue.empty():
            group.append(self._queue.get_nowait())
        return group

    async def _finish_oldest(self, in_flight: deque[_Group]) -> int:
        """Persist the oldest group once durable, ack its events; returns how many."""
        group = in_flight.popleft()
        offsets: dict[int, int] = {}
        for record, ack in zip(group.records, group.written, strict=True):
            offsets[record.partition] = (await ack).offset
        for partition, offset in offsets.items():
            self._store.persist(
                partition,
                [(r.key, r.value, r.staged_id) for r in group.records if r.partition == partition],
                offset,
            )
        for entry in group.entries:
            if entry.event is None:
                if entry.done is not None and not entry.done.done():
                    entry.done.set_result(None)
                continue
            if self._on_persisted is not None and entry.writes:
                self._on_persisted(entry.partition, entry.writes)
            if entry.last:
                await self._stream.ack(entry.event)
        return len(group.entries)


def _done(ack: Ack) -> bool:
    return isinstance(ack, asyncio.Future) and ack.done()
