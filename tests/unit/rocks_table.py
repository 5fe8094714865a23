"""A stand-in for a Faust RocksDB table: real rocksdict databases, one per partition.

``TableStore`` (processors/runtime/store.py) uses three things of a Faust table: its
``name``, ``data._db_for_partition(p)`` and ``data.offset_key``. ``RocksTable`` has them,
over databases in a test's ``tmp_path``, and lets a test read what is *durable* (in
RocksDB), fail the next batch write, and count the batches written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rocksdict

OFFSET_KEY = b"__faust\0offset__"  # faust.stores.rocksdb.Store.offset_key


class PartitionDB:
    """One partition's database, recording (or failing) the batches written to it."""

    def __init__(self, path: Path) -> None:
        self.db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
        self.batches: list[int] = []  # the number of operations of each batch written
        self.fail_next_write = False

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def write(self, batch: Any) -> None:
        if self.fail_next_write:
            self.fail_next_write = False
            raise OSError("disk full")
        operations = batch.len()  # a written batch is consumed
        self.db.write(batch)
        self.batches.append(operations)

    def iter(self, read_opt: rocksdict.ReadOptions | None = None) -> rocksdict.RdictIter:
        return self.db.iter(read_opt) if read_opt is not None else self.db.iter()


class _Data:
    offset_key = OFFSET_KEY

    def __init__(self, root: Path) -> None:
        self._root = root
        self.dbs: dict[int, PartitionDB] = {}

    def _db_for_partition(self, partition: int) -> PartitionDB:
        # Faust opens a partition's database on assignment; here, on first use.
        if partition not in self.dbs:
            self.dbs[partition] = PartitionDB(self._root / f"partition-{partition}")
        return self.dbs[partition]


class RocksTable:
    """What ``TableStore`` needs of a Faust table, over real RocksDB."""

    def __init__(self, root: Path, name: str = "addresses") -> None:
        self.name = name
        self.data = _Data(root)

    def db(self, partition: int) -> PartitionDB:
        return self.data._db_for_partition(partition)

    def durable(self, partition: int) -> dict[bytes, bytes]:
        """Every key/value in the partition's RocksDB (the offset key aside)."""
        items = self.db(partition).db.items()
        return {
            k: v
            for k, v in items
            if isinstance(k, bytes) and isinstance(v, bytes) and k != OFFSET_KEY
        }

    def persisted_offset(self, partition: int) -> int | None:
        """The changelog offset the partition's RocksDB says it reflects (as Faust reads it)."""
        value = self.db(partition).get(OFFSET_KEY)
        return None if value is None else int(value)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        """Write straight to RocksDB: state a previous run left behind."""
        self.db(partition).db[key] = value

    def close(self) -> None:
        for partition in self.data.dbs.values():
            partition.db.close()


@contextmanager
def rocks_table(root: Path, name: str = "addresses") -> Iterator[RocksTable]:
    """A ``RocksTable`` under ``root``, its databases closed afterwards."""
    table = RocksTable(root, name)
    try:
        yield table
    finally:
        table.close()
