"""One endpoint's pending deliveries on this worker, in the order they may be attempted.

The ordering promise: per endpoint and address, a delivery is attempted only once every
earlier one (arrival order, ``seq``) has ended, delivered or failed; deliveries of
different addresses go concurrently, up to the endpoint's concurrency. So a receiver sees
one address's events in the order the platform took them, unless one of them failed for
good (or was re-sent, or a crash repeated one: at-least-once). Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class Pending:
    """A pending delivery as the scheduler tracks it (its record stays in the table)."""

    key: bytes  # the record's key
    partition: int
    address: str
    seq: int
    due: float  # epoch seconds of the next attempt

    def order(self) -> tuple[int, bytes]:
        return (self.seq, self.key)


@dataclass
class EndpointQueue:
    webhook_id: int
    concurrency: int
    # address -> its pending deliveries in arrival order; the head may be in flight.
    _fifos: dict[str, list[Pending]] = field(default_factory=dict)
    # (due, seq, key, address) of heads that are not in flight; stale entries skipped.
    _heap: list[tuple[float, int, bytes, str]] = field(default_factory=list)
    _in_flight: dict[str, Pending] = field(default_factory=dict)
    _keys: set[bytes] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: bytes) -> bool:
        return key in self._keys

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def add(self, item: Pending) -> bool:
        """Queue ``item``; False if it is queued already."""
        if item.key in self._keys:
            return False
        self._keys.add(item.key)
        fifo = self._fifos.setdefault(item.address, [])
        orders = [p.order() for p in fifo]
        position = bisect.bisect(orders, item.order())
        if position == 0 and fifo and item.address in self._in_flight:
            position = 1  # never ahead of the delivery in flight
        fifo.insert(position, item)
        if fifo[0] is item and item.address not in self._in_flight:
            self._push(item)
        return True

    def _push(self, item: Pending) -> None:
        heapq.heappush(self._heap, (item.due, item.seq, item.key, item.address))

    def _is_head(self, key: bytes, due: float, address: str) -> Pending | None:
        fifo = self._fifos.get(address)
        if not fifo or address in self._in_flight:
            return None
        head = fifo[0]
        return head if head.key == key and head.due == due else None

    def next_due(self) -> float | None:
        """When the earliest head is due (None: nothing waits, or all are in flight)."""
        while self._heap:
            due, _, key, address = self._heap[0]
            if self._is_head(key, due, address) is not None:
                return due
            heapq.heappop(self._heap)
        return None

    def take_due(self, now: float) -> list[Pending]:
        """Heads due by ``now``, as many as the concurrency leaves room for; they are in
        flight until ``finished``."""
        taken: list[Pending] = []
        while self._heap and len(self._in_flight) < self.concurrency:
            due, _, key, address = self._heap[0]
            if due > now:
                break
            heapq.heappop(self._heap)
            head = self._is_head(key, due, address)
            if head is None:
                continue
            self._in_flight[address] = head
            taken.append(head)
        return taken

    def finished(self, item: Pending, ended: bool, due: float | None = None) -> None:
        """``item``'s attempt is over: ``ended`` (delivered or failed) lets the address's
        next delivery go; otherwise it is due again at ``due``."""
        if self._in_flight.get(item.address) is item:
            del self._in_flight[item.address]
        fifo = self._fifos.get(item.address, [])
        if item not in fifo:
            return  # dropped meanwhile (its partition was revoked)
        if ended:
            fifo.remove(item)
            self._keys.discard(item.key)
            if not fifo:
                del self._fifos[item.address]
        else:
            item.due = item.due if due is None else due
        if fifo and item.address not in self._in_flight:
            self._push(fifo[0])

    def drop_partition(self, partition: int) -> list[Pending]:
        """Forget the deliveries of ``partition`` (revoked); returns them."""
        dropped = [p for p in self.items() if p.partition == partition]
        self._remove(dropped)
        return dropped

    def drain(self) -> list[Pending]:
        """Take every delivery that is not in flight (the endpoint went inactive)."""
        flying = set(map(id, self._in_flight.values()))
        taken = [p for p in self.items() if id(p) not in flying]
        self._remove(taken)
        return taken

    def _remove(self, items: list[Pending]) -> None:
        gone = set(map(id, items))
        for address in list(self._fifos):
            kept = [p for p in self._fifos[address] if id(p) not in gone]
            if kept:
                self._fifos[address] = kept
                if address not in self._in_flight:
                    self._push(kept[0])
            else:
                del self._fifos[address]
        for item in items:
            self._keys.discard(item.key)
            if self._in_flight.get(item.address) is item:
                del self._in_flight[item.address]

    def items(self) -> Iterator[Pending]:
        for fifo in self._fifos.values():
            yield from fifo
