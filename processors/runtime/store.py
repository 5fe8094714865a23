"""A table's local RocksDB store, kept a prefix of the table's changelog.

Invariant: every key/value in a partition's RocksDB store is in that changelog
partition, up to the offset the store records as persisted (Faust's
``persisted_offset``). Writes reach RocksDB only once their changelog records are
acknowledged, in one ``WriteBatch`` together with that offset. So a restarted worker,
even after kill -9, can keep its store: Faust's recovery reads the changelog from the
persisted offset on, and the store never holds a state whose commands or changelog
record were lost (which would make the replayed event look like a duplicate).

Until then, a write is *staged*: ``get`` and ``keys_with_prefix`` see it (the next
event of the key reads its own writes), the query API does not.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import rocksdict

from processors.runtime.scan import OrderedDB, ordered_range, prefix_end

Write = tuple[bytes, bytes | None]  # None deletes the key
M = TypeVar("M")


class PartitionDB(OrderedDB, Protocol):
    """The part of ``rocksdict.Rdict`` (raw mode) this module uses."""

    def get(self, key: bytes) -> bytes | None: ...

    def write(self, batch: rocksdict.WriteBatch) -> None: ...


class TableStore:
    """Read-your-writes over one Faust table's RocksDB partitions."""

    def __init__(self, table: Any) -> None:  # faust.Table[bytes, bytes] with a RocksDB store
        self._table = table
        self._staged: dict[bytes, tuple[int, bytes | None]] = {}
        self._seq = 0

    @property
    def name(self) -> str:
        return str(self._table.name)

    def _db(self, partition: int) -> PartitionDB:
        # Faust opens the partition's DB on assignment; this only looks it up.
        db: PartitionDB = self._table.data._db_for_partition(partition)
        return db

    def _offset_key(self) -> bytes:
        key: bytes = self._table.data.offset_key
        return key

    def get(self, partition: int, key: bytes) -> bytes | None:
        """The latest value of ``key``, staged or stored."""
        staged = self._staged.get(key)
        if staged is not None:
            return staged[1]
        return self._db(partition).get(key)

    def keys_with_prefix(self, partition: int, prefix: bytes) -> list[bytes]:
        """Every live key starting with ``prefix``, staged writes included, in key order."""
        stored = ordered_range(self._db(partition), prefix, prefix_end(prefix))
        found = {key for key, _ in stored}
        for key, (_, value) in self._staged.items():
            if key.startswith(prefix):
                if value is None:
                    found.discard(key)
                else:
                    found.add(key)
        return sorted(found)

    def stage(self, writes: Sequence[Write]) -> int:
        """Make ``writes`` visible to ``get``; returns the id ``persist`` takes."""
        self._seq += 1
        for key, value in writes:
            self._staged[key] = (self._seq, value)
        return self._seq

    def persist(
        self, partition: int, writes: Sequence[tuple[bytes, bytes | None, int]], offset: int
    ) -> None:
        """Write acknowledged ``(key, value, staged id)`` and their changelog ``offset`` to
        RocksDB in one batch; a key stays staged if a later write of it is in flight."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value, _ in writes:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(self._offset_key(), str(offset).encode())
        self._db(partition).write(batch)
        for key, _, staged_id in writes:
            staged = self._staged.get(key)
            if staged is not None and staged[0] == staged_id:
                del self._staged[key]

    @property
    def staged(self) -> int:
        """How many keys have writes not yet persisted (tests, metrics)."""
        return len(self._staged)


class ParsedCache(Generic[M]):
    """The parsed form of recently read records, so a busy key is not parsed per event.

    A hit requires the stored bytes to equal the cached ones (the same object while the
    write is staged), so the cache can never serve a value the store no longer holds.
    Bounded: the least recently used entries go first.
    """

    def __init__(self, parse: Callable[[bytes], M], size: int = 4096) -> None:
        self._parse = parse
        self._size = size
        self._entries: OrderedDict[bytes, tuple[bytes, M]] = OrderedDict()

    def parse(self, key: bytes, raw: bytes | None) -> M | None:
        """``raw`` (the stored value of ``key``) parsed, from the cache when it matches."""
        if raw is None:
            return None
        hit = self._entries.get(key)
        if hit is not None and (hit[0] is raw or hit[0] == raw):
            self._entries.move_to_end(key)
            return hit[1]
        parsed = self._parse(raw)
        self.put(key, raw, parsed)
        return parsed

    def put(self, key: bytes, raw: bytes, parsed: M) -> None:
        """Remember that ``raw`` parses to ``parsed`` (a value just written)."""
        self._entries[key] = (raw, parsed)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
