"""OrderedWriter: an event is acked only once its commands and all its changelog records
are acknowledged, changelog records go out in event order, RocksDB receives an event's
writes (with their changelog offset) only once the changelog has them, and a failed send
stops the worker.

The broker is replaced by futures the test resolves by hand, the table by a TableStore
over real RocksDB: this checks the writer's ordering logic alone. The crash test
(tests/integration) checks the whole on a real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from processors.runtime.store import TableStore
from processors.runtime.writer import OrderedWriter
from tests.unit.rocks_table import RocksTable, rocks_table


@dataclass
class Message:
    partition: int
    offset: int


@dataclass
class Event:
    message: Message


@dataclass(frozen=True)
class RecordMetadata:
    offset: int


@dataclass
class Changelog:
    """Hands out offsets per partition in send order, as the broker will on ack."""

    sent: list[tuple[bytes, bytes | None, int]] = field(default_factory=list)
    acks: list[asyncio.Future[RecordMetadata]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    _next: dict[int, int] = field(default_factory=dict)

    async def send(
        self, *, key: bytes, value: bytes | None, partition: int, **options: Any
    ) -> asyncio.Future[RecordMetadata]:
        self.sent.append((key, value, partition))
        self.offsets.append(self._next.get(partition, 100))
        self._next[partition] = self.offsets[-1] + 1
        ack: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack

    def ack(self, *records: int) -> None:
        """The broker acknowledges these records (by send order)."""
        for n in records:
            self.acks[n].set_result(RecordMetadata(self.offsets[n]))

    def ack_all(self) -> None:
        self.ack(*(n for n, ack in enumerate(self.acks) if not ack.done()))


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


@dataclass
class Rig:
    """One writer with its fakes: the store over ``table``, the changelog, the stream."""

    table: RocksTable
    store: TableStore
    changelog: Changelog
    stream: Stream
    app: App
    writer: OrderedWriter


@asynccontextmanager
async def rig(tmp_path: Path, max_pending: int = 1000) -> AsyncIterator[Rig]:
    with rocks_table(tmp_path) as table:
        store, changelog, stream, app = TableStore(table), Changelog(), Stream(), App()
        writer = OrderedWriter(
            cast(Any, app), store, changelog, cast(Any, stream), max_pending=max_pending
        )
        async with writer:
            yield Rig(table, store, changelog, stream, app, writer)


def event(offset: int, partition: int = 0) -> Any:
    return Event(Message(partition, offset))


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


async def test_ack_waits_for_the_command_then_for_the_changelog_record(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        command = future()
        await r.writer.write(event(7, partition=2), [(b"a@x", b"state")], [command], last=True)
        await settle()
        assert r.store.get(2, b"a@x") == b"state"  # the next event reads it at once
        assert r.table.durable(2) == {}  # but RocksDB does not have it
        assert r.changelog.sent == []  # nor the changelog: command pending
        assert r.stream.acked == []

        command.set_result(None)
        await settle()
        assert r.changelog.sent == [(b"a@x", b"state", 2)]
        assert r.table.durable(2) == {}  # changelog record not acknowledged yet
        assert r.stream.acked == []

        r.changelog.ack(0)
        await settle()
        assert r.stream.acked == [7]
        assert r.table.durable(2) == {b"a@x": b"state"}


async def test_rocksdb_gets_the_writes_and_the_changelog_offset_once_acknowledged(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        r.table.put(0, b"\x00a@x\x00b\x00gone", b"1")
        writes = [(b"\x00a@x\x00b\x00gone", None), (b"a@x", b"s1"), (b"\x00a@x\x00b\x00k", b"1")]
        await r.writer.write(event(1), writes, last=True)
        await settle()
        assert r.changelog.sent == [(k, v, 0) for k, v in writes]  # a delete is a tombstone
        assert r.table.durable(0) == {b"\x00a@x\x00b\x00gone": b"1"}
        assert r.table.persisted_offset(0) is None

        r.changelog.ack_all()
        await settle()
        assert r.table.durable(0) == {b"a@x": b"s1", b"\x00a@x\x00b\x00k": b"1"}
        # What a restarted worker recovers from: the offset of the event's last record.
        assert r.table.persisted_offset(0) == r.changelog.offsets[-1] == 102
        assert r.store.staged == 0


async def test_an_event_with_several_writes_is_acked_only_when_all_are_acknowledged(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        writes = [(b"\x01all\x00a@x", b"{}"), (b"a@x", b"s1"), (b"\x00a@x\x00b\x00k", b"1")]
        await r.writer.write(event(5), writes, last=True)
        await settle()
        r.changelog.ack(2, 0)  # the last and the first, out of order
        await settle()
        assert r.stream.acked == []
        assert r.table.durable(0) == {}  # not one of them: the event is persisted whole
        r.changelog.ack(1)
        await settle()
        assert r.stream.acked == [5]
        assert r.table.durable(0) == dict(writes)
        assert r.table.persisted_offset(0) == 102


async def test_events_are_acked_in_order_even_when_a_later_one_has_nothing_to_write(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        await r.writer.write(event(1), [(b"a@x", b"s1")], last=True)
        await r.writer.skip(event(2))  # a duplicate: nothing to write
        await r.writer.write(event(3), [(b"b@x", b"s3")], last=True)
        await settle()
        assert r.stream.acked == []

        r.changelog.ack(1)  # the later record first
        await settle()
        assert r.stream.acked == []
        assert r.table.durable(0) == {}  # RocksDB stays a prefix of the changelog

        r.changelog.ack(0)
        await settle()
        assert r.stream.acked == [1, 2, 3]
        assert r.table.durable(0) == {b"a@x": b"s1", b"b@x": b"s3"}
        assert r.table.persisted_offset(0) == 101


async def test_changelog_records_keep_event_order_behind_a_slow_command(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        command = future()
        await r.writer.write(event(1), [(b"a@x", b"suppressed")], [command], last=True)
        await r.writer.write(event(2), [(b"a@x", b"suppressed+opened")], last=True)
        await settle()
        assert r.changelog.sent == []
        assert r.store.get(0, b"a@x") == b"suppressed+opened"

        command.set_result(None)
        await settle()
        # Both were queued when the writer took them: one group, one record for the key.
        assert [value for _, value, _ in r.changelog.sent] == [b"suppressed+opened"]
        assert r.stream.acked == []
        r.changelog.ack(0)
        await settle()
        assert r.table.durable(0) == {b"a@x": b"suppressed+opened"}
        assert r.stream.acked == [1, 2]


async def test_a_group_keeps_each_key_where_it_was_first_written(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        command = future()
        state, entry = b"a@x", b"\x00a@x\x000000000001\x00k"
        await r.writer.write(event(1), [(state, b"s1"), (entry + b"1", b"1")], [command], last=True)
        await r.writer.write(event(2), [(b"\x01all\x00a@x", b"{}"), (state, b"s2")], last=True)
        await r.writer.write(event(3), [(state, b"s3"), (entry + b"3", b"1")], last=True)
        command.set_result(None)
        await settle()
        # The state record stays before the dedupe entries of every event it includes.
        assert [key for key, _, _ in r.changelog.sent] == [
            state,
            entry + b"1",
            b"\x01all\x00a@x",
            entry + b"3",
        ]
        assert r.changelog.sent[0][1] == b"s3"


async def test_a_failed_command_writes_no_changelog_acks_nothing_and_crashes_the_worker(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        command = future()
        await r.writer.write(event(1), [(b"a@x", b"state")], [command], last=True)
        command.set_exception(ConnectionError("broker gone"))
        await settle()
        assert r.changelog.sent == []
        assert r.stream.acked == []
        assert r.table.durable(0) == {}
        assert [type(e) for e in r.app.crashed] == [ConnectionError]
        with pytest.raises(RuntimeError, match="stopped"):
            await r.writer.skip(event(2))


async def test_a_failed_changelog_record_persists_nothing_and_crashes_the_worker(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        await r.writer.write(event(1), [(b"a@x", b"s1"), (b"\x00a@x\x00b\x00k", b"1")], last=True)
        await settle()
        r.changelog.ack(0)
        r.changelog.acks[1].set_exception(ConnectionError("broker gone"))
        await settle()
        assert r.stream.acked == []
        assert r.table.durable(0) == {}
        assert r.table.persisted_offset(0) is None
        assert [type(e) for e in r.app.crashed] == [ConnectionError]


async def test_back_pressure_bounds_what_is_in_flight(tmp_path: Path) -> None:
    async with rig(tmp_path, max_pending=2) as r:
        writes = [
            asyncio.create_task(r.writer.write(event(n), [(b"a@x", b"s%d" % n)], last=True))
            for n in range(5)
        ]
        await settle()
        # Two events in flight (one group, one record for their key), none acknowledged,
        # two queued: the fifth write waits.
        assert [w.done() for w in writes] == [True, True, True, True, False]
        assert [value for _, value, _ in r.changelog.sent] == [b"s1"]

        for _ in range(5):
            r.changelog.ack_all()
            await settle()
        assert all(w.done() for w in writes)
        assert r.stream.acked == [0, 1, 2, 3, 4]
        assert r.table.durable(0) == {b"a@x": b"s4"}
        assert r.table.persisted_offset(0) == r.changelog.offsets[-1]


async def test_a_record_of_several_inputs_is_acked_once_after_all_of_them(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        batch = event(4)
        command = future()
        await r.writer.write(batch, [(b"a@x", b"a1")], last=False)
        await r.writer.write(batch, [(b"a@x", b"a2"), (b"b@x", b"b1")], [command], last=False)
        assert r.store.get(0, b"a@x") == b"a2"  # each input reads the one before it
        await r.writer.skip(batch)
        await settle()
        assert r.changelog.sent == []  # the second input's command is pending
        command.set_result(None)
        await settle()
        assert r.changelog.sent == [(b"a@x", b"a2", 0), (b"b@x", b"b1", 0)]  # one per key
        assert r.stream.acked == []
        r.changelog.ack_all()
        await settle()
        assert r.stream.acked == [4]  # once
        assert r.table.durable(0) == {b"a@x": b"a2", b"b@x": b"b1"}
        assert r.store.staged == 0
