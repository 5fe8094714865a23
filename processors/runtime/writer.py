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
from collections.abc import AsyncIterator, Awaitable, Sequence
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
    event: faust.EventT[bytes]
    writes: Sequence[Write]  # empty: nothing to write, only ack in order
    staged_id: int
    commands: Sequence[Ack]


@dataclass(frozen=True, slots=True)
class _InFlight:
    event: faust.EventT[bytes]
    entry: _Entry
    written: Sequence[Ack]


class OrderedWriter:
    """Makes each event's writes durable after its commands, and acks events in order.

    Use one per agent, inside the agent's coroutine::

        async with OrderedWriter(app, store, changelog, stream, guard) as writer:
            async for event in writer.events():
                ...
                await writer.write(event, writes, command_acks)
    """

    def __init__(
        self,
        app: faust.App,
        store: TableStore,
        changelog: Changelog,
        stream: faust.StreamT[bytes],
        guard: OffsetGuard | None = None,
        max_pending: int = 1000,
    ) -> None:
        self._app = app
        self._store = store
        self._changelog = changelog
        # Events are acked by the writer, not by the iteration (``noack``).
        self._stream = cast(faust.Stream[bytes], stream).noack()
        self._guard = guard
        self._max_in_flight = max_pending
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue(maxsize=max_pending)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OrderedWriter:
        if self._guard is not None:
            await self._guard.__aenter__()
        self._task = asyncio.create_task(self._run(), name=f"writer:{self._store.name}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._guard is not None:
            await self._guard.__aexit__(*exc_info)
        # Events still queued are not acked: they are processed again after a restart.
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
        self, event: faust.EventT[bytes], writes: Sequence[Write], commands: Sequence[Ack] = ()
    ) -> None:
        """Stage ``writes`` now; make them durable after ``commands``; then ack ``event``."""
        staged_id = self._store.stage(writes)
        await self._put(_Entry(event, writes, staged_id, commands))

    async def skip(self, event: faust.EventT[bytes]) -> None:
        """Ack ``event`` (nothing to write) once every earlier event is durable."""
        await self._put(_Entry(event, (), 0, ()))

    async def _put(self, entry: _Entry) -> None:
        if self._task is not None and self._task.done():
            raise RuntimeError("the table writer has stopped") from self._task.exception()
        await self._queue.put(entry)

    async def _run(self) -> None:
        in_flight: deque[_InFlight] = deque()
        try:
            while True:
                if in_flight and (self._queue.empty() or len(in_flight) >= self._max_in_flight):
                    await self._finish_oldest(in_flight)
                    continue
                entry = await self._queue.get()
                for command in entry.commands:
                    await command
                partition = entry.event.message.partition
                written = [
                    await self._changelog.send(
                        key=key,
                        value=value,
                        partition=partition,
                        key_serializer="raw",
                        value_serializer="raw",
                    )
                    for key, value in entry.writes
                ]
                in_flight.append(_InFlight(entry.event, entry, written))
                while in_flight and all(_done(ack) for ack in in_flight[0].written):
                    await self._finish_oldest(in_flight)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A command or changelog record the producer could not deliver: staged
            # writes can no longer become durable in order, so this worker must not go
            # on. Its events are unacked; a restart reads them again.
            log.exception("table_write_failed", table=self._store.name)
            await self._app.crash(exc)
            raise

    async def _finish_oldest(self, in_flight: deque[_InFlight]) -> None:
        done = in_flight.popleft()
        offset = None
        for ack in done.written:
            offset = (await ack).offset
        if offset is not None:
            entry = done.entry
            self._store.persist(
                entry.event.message.partition, entry.staged_id, entry.writes, offset
            )
        await self._stream.ack(done.event)


def _done(ack: Ack) -> bool:
    return isinstance(ack, asyncio.Future) and ack.done()
