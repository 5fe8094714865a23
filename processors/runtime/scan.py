"""Ordered range reads over a table's local RocksDB partitions, merged in key order.

A Faust RocksDB table keeps one database per partition, each sorted bytewise. A range
``[start, stop)`` of the whole local table is the k-way merge of the same range in every
partition: each database is seeked once and read forward only as far as the merge pulls
it, so reading ``limit`` entries costs one seek per partition plus ``limit`` steps of the
merge, whatever the number of keys in the table.

The suppression list (``suppression_page``) reads the table's suppression index
(processors/keys.py) this way, never the state records.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

import orjson
from rocksdict import Rdict, RdictIter, ReadOptions

from processors.errors import ProcessorError
from processors.keys import suppression_prefix

Entry = tuple[bytes, bytes]


class OrderedDB(Protocol):
    """What a range read needs of a database: rocksdict's seekable iterator."""

    def iter(self, read_opt: ReadOptions | None = None) -> RdictIter: ...


class PartitionsNotOpen(ProcessorError):
    """An active partition has no open database yet (mid-assignment); retry shortly."""

    retriable = True

    def __init__(self, partitions: Iterable[int]) -> None:
        self.partitions = sorted(partitions)
        super().__init__(f"active partitions without an open store: {self.partitions}")


def after(key: bytes) -> bytes:
    """The smallest key greater than ``key`` in bytewise order."""
    return key + b"\x00"


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``."""
    head = prefix.rstrip(b"\xff")
    if not head:
        raise ValueError("a prefix of only 0xff bytes has no upper bound")
    return head[:-1] + bytes([head[-1] + 1])


def ordered_range(db: OrderedDB, start: bytes, stop: bytes) -> Iterator[Entry]:
    """Entries of one database with ``start <= key < stop``, in key order, read lazily."""
    options = ReadOptions()
    # The bound lets RocksDB stop at ``stop`` instead of stepping over what lies beyond.
    options.set_iterate_upper_bound(stop)
    it = db.iter(options)
    it.seek(start)
    while it.valid():
        yield it.key(), it.value()
        it.next()


def merged_range(dbs: Iterable[OrderedDB], start: bytes, stop: bytes, limit: int) -> list[Entry]:
    """The first ``limit`` entries with ``start <= key < stop`` across ``dbs``, in key order."""
    ranges = [ordered_range(db, start, stop) for db in dbs]
    return list(itertools.islice(heapq.merge(*ranges, key=itemgetter(0)), limit))


@dataclass(frozen=True, slots=True)
class SuppressedAddress:
    """One row of the suppression list: an address and its suppressed scopes."""

    address: str
    # scope -> ScopeSuppression as JSON data ({reason, cause, since}), scopes in order.
    suppression: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "suppression": self.suppression}


def _scope_page(
    dbs: Sequence[OrderedDB], scope: str, after_address: str, limit: int
) -> list[tuple[str, str, bytes]]:
    """(address, scope, ScopeSuppression JSON) of the first ``limit`` addresses of a scope."""
    prefix = suppression_prefix(scope)
    start = after(prefix + after_address.encode())
    entries = merged_range(dbs, start, prefix_end(prefix), limit)
    return [(key[len(prefix) :].decode(), scope, value) for key, value in entries]


def suppression_page(
    dbs: Sequence[OrderedDB], scopes: Iterable[str], after_address: str, limit: int
) -> list[SuppressedAddress]:
    """The first ``limit`` addresses after ``after_address`` suppressed in any of ``scopes``.

    The first ``limit`` addresses of the union are among the first ``limit`` of each
    scope, so at most ``limit`` index entries per scope are read.
    """
    pages = [_scope_page(dbs, scope, after_address, limit) for scope in sorted(scopes)]
    # heapq.merge is stable: an address's scopes come in the order of ``pages``.
    by_address = itertools.groupby(heapq.merge(*pages, key=itemgetter(0)), key=itemgetter(0))
    return [
        SuppressedAddress(address, {scope: orjson.loads(value) for _, scope, value in group})
        for address, group in itertools.islice(by_address, limit)
    ]


def active_partition_dbs(table: Any) -> dict[int, Rdict]:
    """This worker's active partitions of a Faust table and their open RocksDB databases.

    The only reader of Faust's store internals (``faust.stores.rocksdb.Store``: ``_dbs``,
    one rocksdict ``Rdict`` per partition opened when the partition is assigned). Raises
    ``PartitionsNotOpen`` while an active partition's database is not open yet, so that a
    listing is never silently missing a partition.
    """
    store = table.data
    dbs = getattr(store, "_dbs", None)
    if not isinstance(dbs, Mapping):
        raise TypeError(f"{type(store).__name__} is not a RocksDB store: no ordered reads")
    topic = table.changelog_topic.get_topic_name()
    actives = {tp.partition for tp in table.app.assignor.assigned_actives() if tp.topic == topic}
    if missing := actives - dbs.keys():
        raise PartitionsNotOpen(missing)
    opened = {p: dbs[p] for p in sorted(actives)}
    for db in opened.values():
        if not isinstance(db, Rdict):
            raise TypeError(f"{type(db).__name__} is not a rocksdict database")
    return opened
