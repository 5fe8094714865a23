"""Suppression list: the time of one page against the size of the table.

``python -m bench.suppressions_page`` fills two stores of six RocksDB partitions (the
``addresses`` table's layout and Faust's options for it) in a temp dir, one with 10,000
addresses and one with 1,000,000, the same share of them suppressed, then times reading a
page of 1,000 rows through ``suppression_page``, the function each worker's
``/suppressions/`` and ``/internal/suppressions/`` call on its partitions. The two
stores are read interleaved; the ratio of the medians is the target. No broker. It
rewrites its section of ``BENCHMARKS.md`` and removes its temp dir.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

from faust.stores.rocksdb import RocksDBOptions
from rocksdict import Rdict, WriteBatch

from bench.procstat import machine
from bench.report import replace_section
from processors import keys
from processors.runtime.scan import suppression_page
from schemas.common import SuppressionScope
from schemas.state import AddressState, ScopeSuppression

RESULTS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
BEGIN = "<!-- bench.suppressions_page: begin (generated, do not edit by hand) -->"
END = "<!-- bench.suppressions_page: end -->"
PARTITIONS = 6
PAGE = 1000
TARGET = 2.0  # a page at the large size at most this many times the time at the small one
SCOPES: tuple[str, ...] = get_args(SuppressionScope)
T0 = datetime(2026, 5, 15, 8, 0, tzinfo=UTC)
_BATCH = 20_000


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def address(n: int) -> str:
    return f"user{n:08d}@example{n % 97}.com"


def suppressed_scopes(n: int, every: int) -> tuple[str, ...]:
    """Every ``every``-th address is suppressed: in "all", "marketing" or both."""
    if n % every:
        return ()
    return (("all",), ("marketing",), ("all", "marketing"), ("all",))[(n // every) % 4]


@dataclass(frozen=True)
class Templates:
    """State and index values, built once with the schemas and filled per address."""

    state: bytes
    suppression: bytes

    @classmethod
    def build(cls) -> Templates:
        state = AddressState(
            address="ADDRESS",
            counts={"delivered": 12, "opened": 5, "clicked": 2},
            last_delivered_at=T0,
            last_opened_at=T0 + timedelta(minutes=3),
        )
        since = ScopeSuppression(reason="hard_bounce", cause="evt_0001", since=T0)
        return cls(state.model_dump_json().encode(), since.model_dump_json().encode())


@dataclass
class Store:
    """One table's partitions, filled for ``addresses`` addresses."""

    addresses: int
    dbs: list[Rdict]
    keys: int = 0
    suppressed: int = 0
    fill_s: float = 0.0
    pages_ms: list[float] = field(default_factory=list)
    middle_ms: list[float] = field(default_factory=list)
    scan_ms: float = 0.0

    def fill(self, every: int, templates: Templates) -> None:
        began = time.perf_counter()
        batches = [WriteBatch(raw_mode=True) for _ in self.dbs]
        for n in range(self.addresses):
            owner = address(n)
            p = zlib.crc32(owner.encode()) % PARTITIONS
            batch = batches[p]
            batch.put(owner.encode(), templates.state.replace(b"ADDRESS", owner.encode()))
            # Two remembered dedupe keys, as the dedupe index keeps them per address.
            for bucket in (493_000, 493_001):
                batch.put(keys.dedupe_entry(owner, bucket, f"evt_{n}_{bucket}"), b"1")
            scopes = suppressed_scopes(n, every)
            for scope in scopes:
                batch.put(keys.suppression_entry(scope, owner), templates.suppression)
            self.keys += 3 + len(scopes)
            self.suppressed += bool(scopes)
            if len(batch) >= _BATCH:
                self.dbs[p].write(batch)
                batches[p] = WriteBatch(raw_mode=True)
        for db, batch in zip(self.dbs, batches, strict=True):
            db.write(batch)
            db.flush()
        self.fill_s = time.perf_counter() - began

    def page_ms(self, after: str) -> float:
        began = time.perf_counter_ns()
        rows = [r.as_json() for r in suppression_page(self.dbs, SCOPES, after, PAGE)]
        elapsed = (time.perf_counter_ns() - began) / 1e6
        assert len(rows) == PAGE, f"{self.addresses:,} addresses: a page of {len(rows)}"
        return elapsed

    def full_scan_ms(self) -> float:
        """Every entry read once: what a page that reads the whole table costs at least."""
        began = time.perf_counter_ns()
        seen = sum(1 for db in self.dbs for _ in db.items())
        assert seen == self.keys, (seen, self.keys)
        return (time.perf_counter_ns() - began) / 1e6


@contextmanager
def opened_store(root: Path, addresses: int) -> Iterator[Store]:
    options = RocksDBOptions()  # what Faust opens a table partition with
    dbs = [options.open(root / f"{addresses}-p{p}.db") for p in range(PARTITIONS)]
    try:
        yield Store(addresses, dbs)
    finally:
        for db in dbs:
            db.close()


def measure(stores: list[Store], reps: int) -> None:
    """Pages from the start of the list, the stores interleaved; one warm-up read each."""
    for store in stores:
        store.page_ms("")
    for _ in range(reps):
        for store in stores:
            store.pages_ms.append(store.page_ms(""))
    large = stores[-1]
    # Context: a page from the middle of the large list (the small one has only one page).
    middle = address(large.addresses // 2)
    large.page_ms(middle)
    large.middle_ms = [large.page_ms(middle) for _ in range(reps)]
    for store in stores:
        store.scan_ms = store.full_scan_ms()


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def _spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=10)
    return f"{q[0]:.2f} / {q[-1]:.2f}"


def render(args: argparse.Namespace, run_id: str, stores: list[Store], elapsed: float) -> str:
    small, large = stores
    ratio = statistics.median(large.pages_ms) / statistics.median(small.pages_ms)
    m = machine()
    share = f"{100 / args.every:g} %"
    out = [
        "## Suppression list: one page against the table's size",
        "",
        f"Run: `.venv/bin/python -m bench.suppressions_page` (about {elapsed:.0f} s; no "
        "broker; `--help` lists the knobs). It rewrites this section.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['implementation']} {m['python']}, "
        f"Linux {m['kernel']}. Run `{run_id}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Method: per size, six RocksDB partitions (rocksdict, Faust's table options) filled "
        f"with WriteBatch and flushed: per address a state record and two dedupe-index "
        f"entries, and for {share} of the addresses (the same share at both sizes) "
        "suppression-index entries (`all`, `marketing` or both). A page is "
        f"`processors.runtime.scan.suppression_page`, {PAGE:,} rows, both scopes merged, "
        f"from the start of the list; median of {args.reps} reads per size, the sizes "
        "interleaved, after one warm-up read each.",
        "",
        "### Target (ratio measured in this run)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| page of {PAGE:,} at {large.addresses:,} addresses <= {TARGET:g}x the time at "
        f"{small.addresses:,} | **{ratio:.2f}x** ({_ms(large.pages_ms)} ms vs "
        f"{_ms(small.pages_ms)} ms) | **{'met' if ratio <= TARGET else 'missed'}** |",
        "",
        "### Runs",
        "",
        "| addresses | keys | suppressed | fill s | page ms (median) | p10 / p90 ms "
        "| page from the middle ms | every entry read once ms |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    out += [
        f"| {s.addresses:,} | {s.keys:,} | {s.suppressed:,} | {s.fill_s:.1f} "
        f"| **{_ms(s.pages_ms)}** | {_spread(s.pages_ms)} | {_ms(s.middle_ms)} "
        f"| {s.scan_ms:,.0f} |"
        for s in stores
    ]
    knobs = ", ".join(f"`--{k} {getattr(args, k)}`" for k in ("small", "large", "every", "reps"))
    out += ["", f"Arguments: {knobs}."]
    return "\n".join(out) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=10_000, help="addresses, small store")
    parser.add_argument("--large", type=int, default=1_000_000, help="addresses, large store")
    parser.add_argument("--every", type=int, default=10, help="1 in EVERY is suppressed")
    parser.add_argument("--reps", type=int, default=31, help="timed pages per size")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.small // args.every < PAGE:
        parser.error(f"--small {args.small} holds less than one page of suppressed addresses")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_id = f"{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    began = time.perf_counter()
    templates = Templates.build()
    with (
        tempfile.TemporaryDirectory(prefix="bench-suppressions-") as tmp,
        opened_store(Path(tmp), args.small) as small,
        opened_store(Path(tmp), args.large) as large,
    ):
        stores = [small, large]
        for store in stores:
            store.fill(args.every, templates)
            log(
                f"filled {store.addresses:,} addresses ({store.keys:,} keys) in {store.fill_s:.1f}s"
            )
        measure(stores, args.reps)
        log(f"measured {args.reps} pages per size")
        section = render(args, run_id, stores, time.perf_counter() - began)
    print(section)
    if not args.no_write:
        replace_section(RESULTS, BEGIN, END, section)
        log(f"wrote its section of {RESULTS}")


if __name__ == "__main__":
    main()
