"""TableStore over real RocksDB: staged writes are read back at once but reach RocksDB
only when persisted, together with their changelog offset, in one atomic batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from processors.runtime.store import TableStore, Write
from tests.unit.rocks_table import RocksTable, rocks_table


@pytest.fixture
def table(tmp_path: Path) -> Iterator[RocksTable]:
    with rocks_table(tmp_path) as t:
        yield t


def tagged(writes: Sequence[Write], staged_id: int) -> list[tuple[bytes, bytes | None, int]]:
    """``writes`` as ``persist`` takes them: each with the id of the stage that wrote it."""
    return [(key, value, staged_id) for key, value in writes]


def test_staged_writes_are_read_back_but_not_in_rocksdb_until_persisted(
    table: RocksTable,
) -> None:
    table.put(0, b"\x00a@x\x00b\x00k1", b"1")  # from an earlier run
    table.put(0, b"\x00a@x\x00b\x00k2", b"1")
    table.put(0, b"a@x", b"old state")
    store = TableStore(table)
    store.stage(
        [
            (b"\x00a@x\x00b\x00k1", None),  # a delete
            (b"\x00a@x\x00b\x00k3", b"1"),
            (b"a@x", b"new state"),
        ]
    )
    assert store.get(0, b"a@x") == b"new state"
    assert store.get(0, b"\x00a@x\x00b\x00k1") is None
    assert store.get(0, b"\x00a@x\x00b\x00k2") == b"1"  # untouched: read from RocksDB
    assert store.keys_with_prefix(0, b"\x00a@x\x00b\x00") == [
        b"\x00a@x\x00b\x00k2",
        b"\x00a@x\x00b\x00k3",
    ]
    assert store.staged == 3
    # RocksDB still holds the previous run's state only: nothing of what is staged.
    assert table.durable(0) == {
        b"\x00a@x\x00b\x00k1": b"1",
        b"\x00a@x\x00b\x00k2": b"1",
        b"a@x": b"old state",
    }
    assert table.persisted_offset(0) is None


def test_persist_writes_values_deletes_and_the_offset_in_one_batch(table: RocksTable) -> None:
    table.put(2, b"\x00m1\x00b\x00old", b"1")
    store = TableStore(table)
    writes = [(b"\x00m1\x00b\x00old", None), (b"\x00m1\x00b\x00new", b"1"), (b"m1", b"state")]
    staged_id = store.stage(writes)
    store.persist(2, tagged(writes, staged_id), 41)
    assert table.durable(2) == {b"\x00m1\x00b\x00new": b"1", b"m1": b"state"}
    assert table.persisted_offset(2) == 41
    assert table.db(2).batches == [len(writes) + 1]  # the writes and the offset together
    assert store.staged == 0
    assert store.get(2, b"m1") == b"state"  # now read from RocksDB


def test_a_failed_batch_leaves_rocksdb_as_it_was_and_the_writes_staged(
    table: RocksTable,
) -> None:
    store = TableStore(table)
    first = [(b"a@x", b"s1")]
    store.persist(0, tagged(first, store.stage(first)), 7)
    writes = [(b"a@x", b"s2"), (b"\x00a@x\x00b\x00k", b"1")]
    staged_id = store.stage(writes)
    table.db(0).fail_next_write = True
    with pytest.raises(OSError, match="disk full"):
        store.persist(0, tagged(writes, staged_id), 9)
    # Neither the values nor the offset moved: a restart reads the changelog from 8 on.
    assert table.durable(0) == {b"a@x": b"s1"}
    assert table.persisted_offset(0) == 7
    assert store.get(0, b"a@x") == b"s2"
    assert store.staged == 2


def test_a_later_staged_write_of_a_key_survives_the_persist_of_an_earlier_one(
    table: RocksTable,
) -> None:
    store = TableStore(table)
    first = [(b"a@x", b"s1"), (b"\x00a@x\x00b\x00k", b"1")]
    second = [(b"a@x", b"s2"), (b"\x00a@x\x00b\x00k", None)]
    first_id, second_id = store.stage(first), store.stage(second)
    store.persist(0, tagged(first, first_id), 10)
    assert table.durable(0) == {b"a@x": b"s1", b"\x00a@x\x00b\x00k": b"1"}
    # The next event's writes are still what the store reads, the staged delete too.
    assert store.get(0, b"a@x") == b"s2"
    assert store.get(0, b"\x00a@x\x00b\x00k") is None
    assert store.keys_with_prefix(0, b"\x00a@x\x00") == []
    assert store.staged == 2
    store.persist(0, tagged(second, second_id), 11)
    assert table.durable(0) == {b"a@x": b"s2"}
    assert table.persisted_offset(0) == 11
    assert store.staged == 0


def test_prefix_reads_stay_inside_the_prefix_and_the_partition(table: RocksTable) -> None:
    table.put(0, b"\x00a@x\x00b\x00k", b"1")
    table.put(0, b"\x00a@xy\x00b\x00k", b"1")  # another owner whose name extends a@x
    table.put(0, b"a@x", b"state")
    table.put(1, b"\x00a@x\x00b\x00other-partition", b"1")
    store = TableStore(table)
    assert store.keys_with_prefix(0, b"\x00a@x\x00") == [b"\x00a@x\x00b\x00k"]
    assert store.keys_with_prefix(0, b"\x00z") == []
    assert store.keys_with_prefix(1, b"\x00a@x\x00") == [b"\x00a@x\x00b\x00other-partition"]
    assert store.get(1, b"a@x") is None
    assert store.name == "addresses"
