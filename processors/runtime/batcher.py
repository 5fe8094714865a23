"""The normaliser's output: canonical events sent in batches, raw records acked in order.

``HopBatcher`` holds the canonical events of the raw records the normaliser took, per hop
partition (processors/hops.py), and sends them as batch records as soon as the raw
partition has no later record on the broker (a worker that keeps up sends each raw
record's events at once), and under a backlog when ``max_records`` raw records or
``max_bytes`` of events are pending, and in any case within ``linger_s``.

A raw record is acked only after its events were handed to the producer (which Faust
flushes before it commits), and acks go out in offset order: Faust's commit steps over a
one-record hole in the acks (processors/runtime/offsets.py), so a record acked ahead of
an unsent one could commit that one away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import faust
import structlog

from processors.hops import Batches
from processors.runtime.produce import DirectTopic
from schemas.commands import EVENT_BATCH_VALUE_TYPE, VALUE_TYPE_HEADER

log = structlog.get_logger("processors")

BATCH_HEADERS = [(VALUE_TYPE_HEADER, EVENT_BATCH_VALUE_TYPE.encode())]


@dataclass
class Hop:
    """One hop topic and the events waiting for it."""

    topic: DirectTopic
    batches: Batches


class HopBatcher:
    """Batched sends to the hop topics; use one per normaliser, inside its coroutine."""

    def __init__(
        self,
        app: faust.App,
        hops: Sequence[Hop],
        ack: Callable[[faust.EventT[bytes]], Awaitable[object]],
        linger_s: float,
        max_records: int,
        max_bytes: int,
    ) -> None:
        self._app = app
        self._hops = list(hops)
        self._ack = ack
        self._linger_s = linger_s
        self._max_records = max_records
        self._max_bytes = max_bytes  # of events pending for all hops together
        self._unacked: list[faust.EventT[bytes]] = []
        # Serialises sends: two flushes interleaving their partitions would reorder one.
        self._sending = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HopBatcher:
        self._timer = asyncio.create_task(self._flush_periodically(), name="hop-batcher")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Records not yet sent are not acked either: a restart reads them again.
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._timer

    def add(self, hop: Hop, key: bytes, event: bytes) -> None:
        """Queue one serialised canonical event for ``hop``, in the partition of ``key``."""
        hop.batches.add(key, event)

    async def done(self, event: faust.EventT[bytes], more_waiting: bool) -> None:
        """``event``'s events are all added: ack it once they are sent. Unless
        ``more_waiting`` (later records of its partition are on the broker), send now."""
        self._unacked.append(event)
        full = len(self._unacked) >= self._max_records
        if not more_waiting or full or sum(h.batches.size for h in self._hops) >= self._max_bytes:
            await self.flush()

    async def flush(self) -> None:
        """Send everything pending, then ack the raw records it came from, in order.

        A send the producer refuses stops the worker (whoever called): what is pending
        can no longer go out in order, and the records it would ack are read again after
        a restart."""
        async with self._sending:
            unacked, self._unacked = self._unacked, []
            try:
                for hop in self._hops:
                    for partition, value in hop.batches.take():
                        await hop.topic.send(
                            key=None, value=value, partition=partition, headers=BATCH_HEADERS
                        )
            except Exception as exc:
                log.exception("hop_send_failed")
                await self._app.crash(exc)
                raise
            for event in unacked:
                await self._ack(event)

    async def _flush_periodically(self) -> None:
        # Ticks on its own: what waits is sent within one tick, whatever the sends between.
        while True:
            await asyncio.sleep(self._linger_s)
            if self._unacked:
                await self.flush()
