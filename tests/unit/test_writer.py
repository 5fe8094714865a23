"""OrderedWriter: an event is acked only once its commands and its changelog record are
acknowledged, changelog records go out in event order, and a failed send stops the worker.

The broker is replaced by futures the test resolves by hand: this checks the writer's
ordering logic alone. The crash test (tests/integration) checks the whole on a real broker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from processors.runtime.writer import OrderedWriter


@dataclass
class Message:
    partition: int
    offset: int


@dataclass
class Event:
    message: Message


@dataclass
class Changelog:
    sent: list[tuple[bytes, bytes, int]] = field(default_factory=list)
    acks: list[asyncio.Future[None]] = field(default_factory=list)

    async def send(self, *, key: bytes, value: bytes, partition: int, **_: Any) -> Any:
        self.sent.append((key, value, partition))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


@dataclass
class Table:
    name: str = "addresses"
    data: dict[bytes, bytes] = field(default_factory=dict)
    changelog_topic: Changelog = field(default_factory=Changelog)


@dataclass
class Stream:
    acked: list[int] = field(default_factory=list)

    def noack(self) -> Stream:
        return self

    async def ack(self, event: Event) -> bool:
        self.acked.append(event.message.offset)
        return True


@dataclass
class App:
    crashed: list[BaseException] = field(default_factory=list)

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


def event(offset: int, partition: int = 0) -> Any:
    return Event(Message(partition, offset))


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


async def test_ack_waits_for_the_command_then_for_the_changelog_record() -> None:
    table, stream = Table(), Stream()
    command = future()
    async with OrderedWriter(App(), table, stream) as writer:  # type: ignore[arg-type]
        await writer.write(event(7, partition=2), b"a@x", b"state", [command])
        await settle()
        assert table.data == {b"a@x": b"state"}  # the local store is written at once
        assert table.changelog_topic.sent == []  # but not the changelog: command pending
        assert stream.acked == []

        command.set_result(None)
        await settle()
        assert table.changelog_topic.sent == [(b"a@x", b"state", 2)]
        assert stream.acked == []  # changelog record not acknowledged yet

        table.changelog_topic.acks[0].set_result(None)
        await settle()
        assert stream.acked == [7]


async def test_events_are_acked_in_order_even_when_a_later_one_has_nothing_to_write() -> None:
    table, stream = Table(), Stream()
    async with OrderedWriter(App(), table, stream) as writer:  # type: ignore[arg-type]
        await writer.write(event(1), b"a@x", b"s1")
        await writer.skip(event(2))  # a duplicate: nothing to write
        await writer.write(event(3), b"b@x", b"s3")
        await settle()
        assert stream.acked == []

        table.changelog_topic.acks[1].set_result(None)  # the later record first
        await settle()
        assert stream.acked == []

        table.changelog_topic.acks[0].set_result(None)
        await settle()
        assert stream.acked == [1, 2, 3]


async def test_changelog_records_keep_event_order_behind_a_slow_command() -> None:
    table, stream = Table(), Stream()
    command = future()
    async with OrderedWriter(App(), table, stream) as writer:  # type: ignore[arg-type]
        await writer.write(event(1), b"a@x", b"suppressed", [command])
        await writer.write(event(2), b"a@x", b"suppressed+opened")
        await settle()
        assert table.changelog_topic.sent == []

        command.set_result(None)
        await settle()
        assert [value for _, value, _ in table.changelog_topic.sent] == [
            b"suppressed",
            b"suppressed+opened",
        ]


async def test_a_failed_command_writes_no_changelog_acks_nothing_and_crashes_the_worker() -> None:
    app, table, stream = App(), Table(), Stream()
    command = future()
    async with OrderedWriter(app, table, stream) as writer:  # type: ignore[arg-type]
        await writer.write(event(1), b"a@x", b"state", [command])
        command.set_exception(ConnectionError("broker gone"))
        await settle()
        assert table.changelog_topic.sent == []
        assert stream.acked == []
        assert [type(e) for e in app.crashed] == [ConnectionError]
        with pytest.raises(RuntimeError, match="stopped"):
            await writer.skip(event(2))


async def test_back_pressure_bounds_what_is_in_flight() -> None:
    table, stream = Table(), Stream()
    async with OrderedWriter(App(), table, stream, max_pending=2) as writer:  # type: ignore[arg-type]
        writes = [asyncio.create_task(writer.write(event(n), b"a@x", b"s")) for n in range(5)]
        await settle()
        # Two records in flight, none acknowledged, two queued: the fifth write waits.
        assert [w.done() for w in writes] == [True, True, True, True, False]
        assert len(table.changelog_topic.sent) == 2

        for _ in range(5):
            for ack in table.changelog_topic.acks:
                if not ack.done():
                    ack.set_result(None)
            await settle()
        assert all(w.done() for w in writes)
        assert stream.acked == [0, 1, 2, 3, 4]
