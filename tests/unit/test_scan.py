"""Ordered range reads over per-partition RocksDB databases (real rocksdict, tmp dirs).

The suppression list reads a page of the suppression index merged across partitions:
these tests check that it is the page a full sort would give, never shows a state or a
dedupe record, and steps through about a page of entries whatever the table's size.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rocksdict import Options, Rdict, RdictIter, ReadOptions

from processors.keys import dedupe_entry, suppression_entry
from processors.runtime.scan import (
    PartitionsNotOpen,
    active_partition_dbs,
    after,
    merged_range,
    prefix_end,
    suppression_page,
)
from schemas.state import ScopeSuppression

PARTITIONS = 6
T0 = datetime(2026, 5, 15, 8, 0, tzinfo=UTC)


def open_dbs(root: Path, n: int = PARTITIONS) -> list[Rdict]:
    # raw_mode as Faust opens them: bytes keys and values, no pickling.
    return [Rdict(str(root / f"p{i}"), options=Options(raw_mode=True)) for i in range(n)]


def close(dbs: list[Rdict]) -> None:
    for db in dbs:
        db.close()


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[list[Rdict]]:
    opened = open_dbs(tmp_path)
    yield opened
    close(opened)


def partition(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


def suppression(n: int, reason: str = "hard_bounce") -> ScopeSuppression:
    return ScopeSuppression(reason=reason, cause=f"evt_{n}", since=T0 + timedelta(minutes=n))


def store_address(dbs: list[Rdict], address: str, n: int, scopes: tuple[str, ...]) -> None:
    """An address as the writer files it: state record, dedupe entries, index entries."""
    db = dbs[partition(address)]
    db[address.encode()] = orjson.dumps({"address": address})
    db[dedupe_entry(address, 493_000 + n, f"evt_{n}")] = b"1"
    for scope in scopes:
        db[suppression_entry(scope, address)] = (
            suppression(n, reason=scope).model_dump_json().encode()
        )


def expected_row(address: str, n: int, scopes: tuple[str, ...]) -> dict[str, Any]:
    return {
        "address": address,
        "suppression": {
            scope: suppression(n, reason=scope).model_dump(mode="json") for scope in scopes
        },
    }


def test_key_bounds() -> None:
    assert after(b"a") == b"a\x00"
    assert b"a" < after(b"a") <= b"a\x00" < b"aa"
    assert prefix_end(b"\x01all\x00") == b"\x01all\x01"
    assert prefix_end(b"ab\xff\xff") == b"ac"
    with pytest.raises(ValueError, match="no upper bound"):
        prefix_end(b"\xff")


@settings(max_examples=40, deadline=None)
@given(
    keys=st.dictionaries(
        st.binary(min_size=1, max_size=4), st.integers(0, PARTITIONS - 1), max_size=60
    ),
    start=st.binary(max_size=3),
    width=st.binary(min_size=1, max_size=3),
    limit=st.integers(0, 70),
)
def test_merged_range_is_the_sorted_union_cut_to_the_range(
    tmp_path_factory: pytest.TempPathFactory,
    keys: dict[bytes, int],
    start: bytes,
    width: bytes,
    limit: int,
) -> None:
    stop = start + width
    dbs = open_dbs(tmp_path_factory.mktemp("merge"))
    try:
        for key, p in keys.items():
            dbs[p][key] = b"v" + key
        expected = sorted((k, b"v" + k) for k in keys if start <= k < stop)[:limit]
        assert merged_range(dbs, start, stop, limit) == expected
    finally:
        close(dbs)


def test_page_groups_scopes_per_address_and_skips_state_and_dedupe_records(
    dbs: list[Rdict],
) -> None:
    stored = {
        "carol@example.com": ("all", "marketing"),
        "alice@example.com": ("marketing",),
        "bob@example.com": (),
        "dave@example.com": ("all",),
        "dave@example.com.au": ("all", "marketing"),
    }
    for n, (address, scopes) in enumerate(stored.items()):
        store_address(dbs, address, n, scopes)
    rows = [r.as_json() for r in suppression_page(dbs, ["all", "marketing"], "", 100)]
    order = sorted(a for a, scopes in stored.items() if scopes)
    n_of = {a: n for n, a in enumerate(stored)}
    assert rows == [expected_row(a, n_of[a], stored[a]) for a in order]
    assert list(rows[1]["suppression"]) == ["all", "marketing"]  # scopes in scope order

    marketing = suppression_page(dbs, ["marketing"], "", 100)
    assert [r.address for r in marketing] == [
        "alice@example.com",
        "carol@example.com",
        "dave@example.com.au",
    ]
    assert all(list(r.suppression) == ["marketing"] for r in marketing)


def test_after_is_exclusive_and_pages_join_up_without_gaps_or_repeats(
    dbs: list[Rdict],
) -> None:
    addresses = [f"user{i:03d}@example.com" for i in range(250)]
    for n, address in enumerate(addresses):
        # Some addresses in one scope, some in both, some in none.
        scopes = (("all",), ("marketing",), ("all", "marketing"), ())[n % 4]
        store_address(dbs, address, n, scopes)
    listed = [a for n, a in enumerate(addresses) if n % 4 != 3]

    page = suppression_page(dbs, ["all", "marketing"], "user001@example.com", 3)
    assert [r.address for r in page] == [f"user00{i}@example.com" for i in (2, 4, 5)]

    walked: list[str] = []
    cursor = ""
    while page := suppression_page(dbs, ["all", "marketing"], cursor, 17):
        walked += [r.address for r in page]
        cursor = page[-1].address
    assert walked == listed


@dataclass
class CountingIter:
    """A rocksdict iterator that counts its steps."""

    inner: RdictIter
    steps: list[int]

    def seek(self, key: bytes) -> None:
        self.inner.seek(key)

    def valid(self) -> bool:
        return self.inner.valid()

    def key(self) -> Any:
        return self.inner.key()

    def value(self) -> Any:
        return self.inner.value()

    def next(self) -> None:
        self.steps.append(1)
        self.inner.next()


@dataclass
class CountingDB:
    db: Rdict
    steps: list[int] = field(default_factory=list)

    def iter(self, read_opt: ReadOptions | None = None) -> Any:
        return CountingIter(self.db.iter(read_opt), self.steps)


def test_a_page_steps_through_about_a_page_of_entries_whatever_the_table_size(
    dbs: list[Rdict],
) -> None:
    for n in range(3000):
        store_address(dbs, f"u{n:05d}@example.com", n, ("all", "marketing") if n % 2 else ())
    counted = [CountingDB(db) for db in dbs]
    page = suppression_page(counted, ["all", "marketing"], "u01000@example.com", 50)
    assert [r.address for r in page] == [f"u{n:05d}@example.com" for n in range(1001, 1101, 2)]
    steps = sum(len(c.steps) for c in counted)
    # Per scope: 50 entries merged from 6 partitions, each read one past what it gave.
    assert steps <= 2 * (50 + PARTITIONS), steps


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class Assignor:
    actives: set[TP]

    def assigned_actives(self) -> set[TP]:
        return self.actives


@dataclass
class App:
    assignor: Assignor


@dataclass
class Topic:
    name: str

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class Store:
    _dbs: dict[int, Any]


@dataclass
class Table:
    data: Any
    app: App
    changelog_topic: Topic = field(default_factory=lambda: Topic("g1-addresses-changelog"))


def test_active_partition_dbs_are_the_open_databases_of_active_partitions_only(
    dbs: list[Rdict],
) -> None:
    actives = {TP("g1-addresses-changelog", p) for p in (4, 0, 2)}
    others = {TP("g1-messages-changelog", 1), TP("g1-email.events", 3)}
    table = Table(Store(dict(enumerate(dbs))), App(Assignor(actives | others)))
    assert active_partition_dbs(table) == {0: dbs[0], 2: dbs[2], 4: dbs[4]}


def test_an_active_partition_without_an_open_database_is_not_ready(dbs: list[Rdict]) -> None:
    actives = {TP("g1-addresses-changelog", p) for p in (0, 5)}
    table = Table(Store({0: dbs[0]}), App(Assignor(actives)))
    with pytest.raises(PartitionsNotOpen) as caught:
        active_partition_dbs(table)
    assert caught.value.partitions == [5]
    assert caught.value.retriable


def test_a_store_without_partition_databases_is_refused() -> None:
    table = Table(data={}, app=App(Assignor(set())))
    with pytest.raises(TypeError, match="not a RocksDB store"):
        active_partition_dbs(table)
