"""The normaliser's key -> hop partition lookup (processors/agents.py ``KeyPartition``):
the producer's default partitioner, cached per key while the partition count holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from aiokafka.partitioner import DefaultPartitioner

from processors.agents import KeyPartition

PARTITIONER = DefaultPartitioner()


@dataclass
class Metadata:
    """The two calls KeyPartition makes of Faust's consumer, over a partition count."""

    count: int | None
    hashed: list[bytes] = field(default_factory=list)

    def topic_partitions(self, topic: str) -> int | None:
        return self.count

    def key_partition(self, topic: str, key: bytes) -> int | None:
        if self.count is None:
            return None
        self.hashed.append(key)
        return int(PARTITIONER(key, list(range(self.count)), list(range(self.count))))


def lookup(metadata: Metadata, cache_size: int = 100) -> KeyPartition:
    app: Any = SimpleNamespace(consumer=metadata)
    return KeyPartition(cast(faust.App, app), "email.events", cache_size=cache_size)


def test_a_key_is_hashed_once_and_gets_the_partitioners_answer() -> None:
    metadata = Metadata(6)
    partition_of = lookup(metadata)
    keys = [f"u{n}@x.org".encode() for n in range(50)]
    first = [partition_of(k) for k in keys]
    again = [partition_of(k) for k in keys]
    assert first == again == [PARTITIONER(k, list(range(6)), list(range(6))) for k in keys]
    assert metadata.hashed == keys


def test_a_new_partition_count_empties_the_cache() -> None:
    metadata = Metadata(6)
    partition_of = lookup(metadata)
    keys = [f"u{n}@x.org".encode() for n in range(50)]
    for k in keys:
        partition_of(k)
    metadata.count = 12
    assert [partition_of(k) for k in keys] == [
        PARTITIONER(k, list(range(12)), list(range(12))) for k in keys
    ]
    assert metadata.hashed == keys + keys


def test_the_cache_stays_bounded() -> None:
    metadata = Metadata(6)
    partition_of = lookup(metadata, cache_size=10)
    for n in range(25):
        partition_of(f"u{n}@x.org".encode())
    assert len(partition_of._cache) <= 10
    assert partition_of(b"u24@x.org") == PARTITIONER(b"u24@x.org", list(range(6)), list(range(6)))


def test_without_metadata_a_key_has_no_partition() -> None:
    partition_of = lookup(Metadata(None))
    with pytest.raises(RuntimeError, match="no metadata"):
        partition_of(b"u@x.org")
