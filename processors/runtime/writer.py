"""Durable, ordered table writes for the stateful agents.

Why not ``table[key] = value``: Faust writes RocksDB and puts the changelog record in
its producer buffer, and the offset commit does not reliably wait for that buffer
(``ProducerBuffer.flush_atmost`` gives up after 0.1 s without a send, and a record the
buffer task is still handing to aiokafka is invisible to it). So an offset could be
committed for an event whose new state never reached the changelog; after ``kill -9`` the
restarted worker recovered a state without that event and never saw it again (the crash
test caught this about once in nine runs).

``OrderedWriter`` replaces that path. For every event, in the order the agent took them:

1. the agent computes the new state, sends the event's suppression commands without
   waiting for them, writes the local store, and hands the event to the writer;
2. the writer waits until those commands are acknowledged, then sends the changelog
   record straight to the producer (partition = the event's partition, as Faust does);
3. it acks the source event only once that changelog record is acknowledged.

Faust commits only acked offsets, so a committed offset always means "this event's
commands and state are on the broker": a crash can repeat a command, never lose one,
and never lose a state write (DESIGN.md §3). Events are pipelined: one event's broker
round trip no longer holds up the next. The local store may run ahead of the changelog
by the events in flight; it is a cache that a restarted worker rebuilds from the
changelog (``wipe_local_state_on_start``), and a rebalance waits until every event is
acked (Faust's ``stream_wait_empty``), i.e. until the changelog has caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
import structlog

from processors.runtime.offsets import OffsetGuard

log = structlog.get_logger("processors")

Ack = Awaitable[Any]


@dataclass(frozen=True, slots=True)
class _Entry:
    event: faust.EventT[bytes]
    key: bytes | None  # None: nothing to write, only ack in order
    value: bytes | None
    commands: Sequence[Ack]


class OrderedWriter:
    """Writes ``table``'s changelog after each event's commands, and acks events in order.

    Use one per agent, inside the agent's coroutine::

        async with OrderedWriter(app, table, stream) as writer:
            async for event in writer.events():
                ...
                await writer.write(event, key, value, command_acks)
    """

    def __init__(
        self,
        app: faust.App,
        table: Any,  # faust.Table[bytes, bytes]
        stream: faust.StreamT[bytes],
        guard: OffsetGuard | None = None,
        max_pending: int = 1000,
    ) -> None:
        self._app = app
        self._table = table
        # Events are acked by the writer, not by the iteration (``noack``).
        self._stream = cast(faust.Stream[bytes], stream).noack()
        self._guard = guard
        self._max_in_flight = max_pending
        self._queue: asyncio.Queue[_Entry] = asyncio.Queue(maxsize=max_pending)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OrderedWriter:
        if self._guard is not None:
            await self._guard.__aenter__()
        self._task = asyncio.create_task(self._run(), name=f"writer:{self._table.name}")
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
        self, event: faust.EventT[bytes], key: bytes, value: bytes, commands: Sequence[Ack] = ()
    ) -> None:
        """Store ``value`` under ``key`` now; make it durable after ``commands``; then ack."""
        self._table.data[key] = value  # the local store only (the event's partition)
        await self._put(_Entry(event, key, value, commands))

    async def skip(self, event: faust.EventT[bytes]) -> None:
        """Ack ``event`` (nothing to write) once every earlier event is durable."""
        await self._put(_Entry(event, None, None, ()))

    async def _put(self, entry: _Entry) -> None:
        if self._task is not None and self._task.done():
            raise RuntimeError("the table writer has stopped") from self._task.exception()
        await self._queue.put(entry)

    async def _run(self) -> None:
        in_flight: deque[tuple[faust.EventT[bytes], Ack | None]] = deque()
        try:
            while True:
                if in_flight and (self._queue.empty() or len(in_flight) >= self._max_in_flight):
                    await self._ack_oldest(in_flight)
                    continue
                entry = await self._queue.get()
                for command in entry.commands:
                    await command
                written = None
                if entry.key is not None:
                    written = await self._table.changelog_topic.send(
                        key=entry.key,
                        value=entry.value,
                        partition=entry.event.message.partition,
                        key_serializer="raw",
                        value_serializer="raw",
                    )
                in_flight.append((entry.event, written))
                while in_flight and (in_flight[0][1] is None or _done(in_flight[0][1])):
                    await self._ack_oldest(in_flight)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A command or changelog record the producer could not deliver: the local
            # store is now ahead of the broker, so this worker must not go on. Its
            # events are unacked; a restart rebuilds state from the changelog.
            log.exception("table_write_failed", table=self._table.name)
            await self._app.crash(exc)
            raise

    async def _ack_oldest(self, in_flight: deque[tuple[faust.EventT[bytes], Ack | None]]) -> None:
        event, written = in_flight.popleft()
        if written is not None:
            await written
        await self._stream.ack(event)


def _done(ack: Ack) -> bool:
    return isinstance(ack, asyncio.Future) and ack.done()
