"""Faust's in-flight set holds only messages whose final ack can still happen.

Faust's stop and each rebalance wait (``Consumer.wait_empty``; at a stop without a time
limit) until every message a stream has taken (``Consumer._unacked_messages``, a weak
set) is acked or garbage. A message that several agents read (``email.events``: the
address agent and the delivery agent) counts one share per agent (``refcount``); each
agent gives its share back when it acks (our streams are ``noack``: the writer acks once
the event's writes are durable), and only the last one makes the offset committable.

Some shares are never given back:

* Before that wait Faust empties the agents' input queues (``flow_control.clear``) and
  leaves the counts alone: the share of each cleared event is lost.
* An event Faust could not queue at once, the agent's queue being full, waits in a
  ``put``, and ``clear`` cancels that ``put``.
* ``OffsetGuard`` drops a record that comes past a hole, and never acks it.

A message with such a share is never final-acked. It stays in the in-flight set for as
long as anything refers to it, and a stream refers to its last event until the next one
comes, which, with the partitions paused, is never: the wait would not end.

``InFlight`` counts the abandoned shares of each message, and takes a message out of the
in-flight set once every share still counted is abandoned: the wait still covers an
agent that is finishing its own share, and ends when none is left. Nothing is acked, so
the offset stays uncommitted and the next generation or the next start reads it again.

Left alone, not seen: Faust's Cython stream iterator does not give back the share of an
event it skips as stale (read under an older generation) or takes while the flow is
suspended. A stream that took the same message under that generation has had newer
records since, so nothing refers to it and the weak set lets it go.

For any share lost some other way, the wait has a bound: after ``give_up_after_s`` the
messages still in the set are logged (``stream_wait_given_up``: partition, offset,
shares left, shares abandoned) and taken out, so that neither the stop nor the
rebalance waits for good (at a rebalance, that would stall the whole group until its
rebalance timeout). Nothing is acked here either. The bound is far over what an agent
needs to make an event durable (a changelog send fails within the producer's request
timeout, and the worker crashes then), so a share still held at the bound is one no
agent will give back.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import structlog

log = structlog.get_logger("processors")

GIVE_UP_AFTER_S = 60.0  # of one stop's or rebalance's wait for the in-flight messages
LOGGED = 20  # messages named in the log line when the wait gives up


class InFlight:
    """The abandoned shares of the app's messages; installed once per app (``of``)."""

    def __init__(self, app: Any, give_up_after_s: float = GIVE_UP_AFTER_S) -> None:
        self._app = app
        self._abandoned: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._give_up_after_s = give_up_after_s
        self._waiting_since: float | None = None  # monotonic; None: no wait under way
        self.given_up = 0  # messages a wait gave up on, in this process

    @classmethod
    def of(cls, app: Any, give_up_after_s: float = GIVE_UP_AFTER_S) -> InFlight:
        """The app's ``InFlight``, installed on first use (as each agent starts)."""
        existing: InFlight | None = getattr(app, "_mailpulse_inflight", None)
        if existing is None:
            existing = cls(app, give_up_after_s)
            existing._install()
            app._mailpulse_inflight = existing
        return existing

    def abandon(self, message: Any) -> None:
        """One share of ``message`` will never be given back."""
        self._abandoned[message] = self._abandoned.get(message, 0) + 1
        self._release(message)

    def _abandon_event(self, item: Any) -> None:
        # A channel queue holds Faust events; anything else there has no share to count.
        message = getattr(item, "message", None)
        if message is not None:
            self.abandon(message)

    def release_abandoned(self) -> None:
        """Take out of the in-flight set each message whose shares left are all abandoned."""
        for message in list(self._abandoned):
            self._release(message)

    def _release(self, message: Any) -> None:
        if message.refcount <= self._abandoned.get(message, 0):
            self._app.consumer._unacked_messages.discard(message)

    def _install(self) -> None:
        flow = self._app.flow_control
        clear = flow.clear

        def clear_and_abandon() -> None:
            for queue in list(flow._queues):
                for item in list(queue._queue):
                    self._abandon_event(item)
            clear()

        flow.clear = clear_and_abandon
        # Each channel's queue, made now or later (Faust makes them as streams start).
        for queue in list(flow._queues):
            self._abandon_cancelled_puts(queue)
        manage_queue = flow.manage_queue

        def manage_and_wrap(queue: Any) -> None:
            self._abandon_cancelled_puts(queue)
            manage_queue(queue)

        flow.manage_queue = manage_and_wrap
        consumer = self._app.consumer
        clean = consumer._clean_unacked_messages

        def clean_and_release() -> None:
            # ``wait_empty`` calls this after each second it waits for acks.
            clean()
            self.release_abandoned()
            since = self._waiting_since
            if since is not None and time.monotonic() - since >= self._give_up_after_s:
                self._give_up()

        consumer._clean_unacked_messages = clean_and_release
        wait_empty = consumer.wait_empty

        async def timed_wait_empty() -> None:
            self._waiting_since = time.monotonic()
            try:
                await wait_empty()
            finally:
                self._waiting_since = None

        consumer.wait_empty = timed_wait_empty

    def _give_up(self) -> None:
        unacked = self._app.consumer._unacked_messages
        left = sorted(
            (str(getattr(m, "tp", "?")), m.offset, m.refcount, self._abandoned.get(m, 0))
            for m in unacked
        )
        if not left:
            return
        log.warning(
            "stream_wait_given_up",
            after_s=self._give_up_after_s,
            messages=len(left),
            first=[f"{tp}@{offset} shares={n} abandoned={a}" for tp, offset, n, a in left[:LOGGED]],
        )
        self.given_up += len(left)
        unacked.clear()

    def _abandon_cancelled_puts(self, queue: Any) -> None:
        put = queue.put

        async def put_or_abandon(value: Any) -> None:
            try:
                await put(value)
            except asyncio.CancelledError:
                # Not queued: ``clear`` cancelled the wait for room, or the task was.
                self._abandon_event(value)
                raise

        queue.put = put_or_abandon
