"""``InFlight``: a message leaves Faust's in-flight set once every share of it still
counted is abandoned (its event cleared from an agent's queue, or dropped by a guard),
so ``wait_empty`` waits for the agents still working on it and for nothing else; and
nothing is acked."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

from mode.utils.queues import FlowControlEvent, ThrowableQueue

from processors.runtime.inflight import InFlight


@dataclass(eq=False)
class Message:
    offset: int
    refcount: int = 2  # two agents read it
    acked: bool = False

    def ack_share(self) -> None:  # an agent's ack, as Faust's ``Message.ack``
        self.refcount -= 1
        self.acked = self.refcount == 0


@dataclass
class Event:
    message: Message


@dataclass
class Consumer:
    _unacked_messages: weakref.WeakSet[Message] = field(default_factory=weakref.WeakSet)

    def _clean_unacked_messages(self) -> None:  # as Faust's: drop the acked ones
        self._unacked_messages -= {m for m in self._unacked_messages if m.acked}

    async def wait_empty(self) -> None:  # as Faust's: a round per second, here per 10 ms
        while self._unacked_messages:
            await asyncio.sleep(0.01)
            self._clean_unacked_messages()


@dataclass
class App:
    flow_control: FlowControlEvent
    consumer: Consumer


def app_with_queues(n: int) -> tuple[App, list[ThrowableQueue[Any]]]:
    """The queues as Faust makes its channels' (``App.FlowControlQueue``)."""
    flow = FlowControlEvent()
    queues: list[ThrowableQueue[Any]] = [
        ThrowableQueue(flow_control=flow, clear_on_resume=True) for _ in range(n)
    ]
    return App(flow, Consumer()), queues


def test_a_cleared_message_is_waited_for_while_another_agent_still_works_on_it() -> None:
    app, (addresses, deliveries) = app_with_queues(2)
    InFlight.of(app)
    taken, both = Message(0), Message(1)
    # The address agent has taken ``taken`` and works on it; the delivery agent still
    # had it queued. ``both`` was taken by neither: queued for both, then cleared.
    app.consumer._unacked_messages.update([taken, both])
    deliveries.put_nowait(Event(taken))
    deliveries.put_nowait(Event(both))
    addresses.put_nowait(Event(both))
    app.flow_control.clear()
    assert deliveries.empty()
    assert addresses.empty()
    assert set(app.consumer._unacked_messages) == {taken}
    app.consumer._clean_unacked_messages()
    assert set(app.consumer._unacked_messages) == {taken}  # its agent is not done
    taken.ack_share()
    app.consumer._clean_unacked_messages()  # wait_empty's round after each second
    assert not set(app.consumer._unacked_messages)
    # Neither was final-acked: no offset at or past them can be committed.
    assert not taken.acked
    assert not both.acked


def test_two_guards_dropping_one_message_release_it_without_an_ack() -> None:
    app, _ = app_with_queues(0)
    inflight = InFlight.of(app)
    message = Message(7)
    app.consumer._unacked_messages.add(message)
    inflight.abandon(message)  # the address agent's guard
    assert set(app.consumer._unacked_messages) == {message}
    inflight.abandon(message)  # the delivery agent's guard
    assert not set(app.consumer._unacked_messages)
    assert not message.acked


def test_installed_once_per_app() -> None:
    app, (queue,) = app_with_queues(1)
    first = InFlight.of(app)
    clear = app.flow_control.clear
    assert InFlight.of(app) is first
    assert app.flow_control.clear is clear
    message = Message(0, refcount=1)
    app.consumer._unacked_messages.add(message)
    queue.put_nowait(Event(message))
    app.flow_control.clear()
    assert queue.empty()
    assert not set(app.consumer._unacked_messages)


async def test_an_event_waiting_for_room_in_a_full_queue_is_abandoned_when_cleared() -> None:
    flow = FlowControlEvent()
    flow.resume()  # as the worker does once started (a new one is suspended)
    app = App(flow, Consumer())
    InFlight.of(app)  # before the queue is made: Faust makes them as streams start
    full: ThrowableQueue[Any] = ThrowableQueue(maxsize=1, flow_control=flow, clear_on_resume=True)
    waiting = Message(1)  # the address agent has it; the delivery agent's queue is full
    app.consumer._unacked_messages.add(waiting)
    full.put_nowait(Event(Message(0)))
    put = asyncio.ensure_future(full.put(Event(waiting)))  # as Faust's conductor does
    await asyncio.sleep(0)
    assert not put.done()
    app.flow_control.clear()
    await asyncio.wait([put])
    assert put.cancelled()
    waiting.ack_share()  # the address agent is done with it
    app.consumer._clean_unacked_messages()
    assert not set(app.consumer._unacked_messages)
    assert not waiting.acked


async def test_a_wait_for_a_share_no_agent_gives_back_ends_after_the_bound() -> None:
    app, _ = app_with_queues(0)
    inflight = InFlight.of(app, give_up_after_s=0.2)
    lost, working = Message(3, refcount=1), Message(4, refcount=1)
    app.consumer._unacked_messages.update([lost, working])

    async def agent() -> None:  # gives its share back well inside the bound
        await asyncio.sleep(0.05)
        working.ack_share()

    acking = asyncio.ensure_future(agent())
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(app.consumer.wait_empty(), timeout=5)
    waited = asyncio.get_running_loop().time() - started
    await acking
    assert waited >= 0.2, "gave up before the bound"
    assert inflight.given_up == 1  # ``lost`` only: ``working`` was acked before
    assert not set(app.consumer._unacked_messages)
    assert working.acked
    assert not lost.acked  # taken out of the wait, never acked: its offset is read again


async def test_a_wait_whose_agents_finish_in_time_gives_up_on_nothing() -> None:
    app, _ = app_with_queues(0)
    inflight = InFlight.of(app, give_up_after_s=0.5)
    message = Message(5, refcount=1)
    app.consumer._unacked_messages.add(message)
    asyncio.get_running_loop().call_later(0.05, message.ack_share)
    await asyncio.wait_for(app.consumer.wait_empty(), timeout=5)
    assert message.acked
    assert inflight.given_up == 0
    # The bound counts from each wait's start, not from the first one's.
    late = Message(6, refcount=1)
    app.consumer._unacked_messages.add(late)
    await asyncio.sleep(0.6)
    asyncio.get_running_loop().call_later(0.05, late.ack_share)
    await asyncio.wait_for(app.consumer.wait_empty(), timeout=5)
    assert late.acked
    assert inflight.given_up == 0
