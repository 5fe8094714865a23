"""The two idempotence layers of DESIGN.md §3, with the dedupe index outside the record.

A record (address or message) keeps only what stays small whatever its traffic:

* ``positions``: per raw partition, the highest ``(offset, index)`` applied. Anything at
  or below it is a replay (an offset reset), exactly, with no retention.
* ``newest_at``: the newest event time applied. The dedupe *horizon* is
  ``newest_at - retention``; a dedupe key is remembered while its event time is at or
  after the horizon.
* ``buckets``: the event-time hours (``bucket_of``) that may still hold remembered keys:
  every hour of an applied input that ends after the horizon. At most
  ``ceil(retention / 1 h) + 1`` of them are live, so the list is bounded.

The remembered keys themselves live in a separate index, one entry per
``(owner, bucket, dedupe key)`` in the owner's partition (``runtime/store.py`` keeps it in
the table's own store and changelog). Lookup is one point read: a provider retry is the
same payload, so it has the same event time and lands in the same bucket. Pruning drops
whole buckets once they end at or before the horizon; every entry is deleted once, so the
cost is O(1) amortised per event. A key is filed whenever its bucket is live, even a key
just older than the horizon in the bucket that straddles it: then ``buckets`` and the
index are a function of the set of inputs applied, not of their arrival order (a rebuild
gives the live tables). Such entries are never consulted: an event older than the horizon
is not looked up (it is "forgotten at once" and counts again, the price of a bounded
window).

Everything here is pure; the index is read through ``SeenLookup`` and written by the
caller from ``IndexChange``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from processors.policy import Policy
from schemas.events import RawPosition
from schemas.state import Dedupe

BUCKET_SECONDS = 3600


def bucket_of(at: datetime) -> int:
    """The event-time hour a dedupe key is filed under (hours since the epoch)."""
    return int(at.timestamp()) // BUCKET_SECONDS


def _live(bucket: int, edge: datetime) -> bool:
    """A bucket still holds keys at or after ``edge`` (it ends after it)."""
    return (bucket + 1) * BUCKET_SECONDS > edge.timestamp()


class SeenLookup(Protocol):
    """Read access to the dedupe index of one owner (an address or a message id)."""

    def __call__(self, bucket: int, key: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class IndexChange:
    """What the caller writes to the dedupe index for one input."""

    remember: tuple[int, str] | None = None  # (bucket, dedupe key) to add
    expire: tuple[int, ...] = ()  # buckets whose entries are all to be deleted


NO_CHANGE = IndexChange()


def horizon(dedupe: Dedupe, policy: Policy) -> datetime | None:
    """Keys with an event time before this are forgotten (None: nothing applied yet)."""
    return None if dedupe.newest_at is None else dedupe.newest_at - policy.dedupe_retention


def is_replay(dedupe: Dedupe, raw: RawPosition) -> bool:
    """At or below the highest raw position applied for its raw partition."""
    applied = dedupe.positions.get(str(raw.partition))
    return applied is not None and (raw.offset, raw.index) <= applied


def is_retry(dedupe: Dedupe, key: str, at: datetime, policy: Policy, seen: SeenLookup) -> bool:
    """A dedupe key already remembered inside the window (a provider retry)."""
    edge = horizon(dedupe, policy)
    return (edge is None or at >= edge) and seen(bucket_of(at), key)


def repair(dedupe: Dedupe, key: str, at: datetime, policy: Policy, seen: SeenLookup) -> IndexChange:
    """For a replay: re-file its key if the index lacks it and its bucket is live.

    The state record and the index entry are two changelog records, the state first
    (processors/step.py); a crash between them leaves a state that has the event without
    its entry. The event was not acked, so it comes again as a replay: re-filing the key
    here keeps later retries exact. A replay whose bucket has expired files nothing.
    """
    bucket = bucket_of(at)
    if bucket not in dedupe.buckets or seen(bucket, key):
        return NO_CHANGE
    return IndexChange(remember=(bucket, key))


def remember(dedupe: Dedupe, at: datetime, raw: RawPosition, policy: Policy) -> Dedupe:
    """The record's idempotence fields once an input at ``raw`` and ``at`` is applied."""
    newest = at if dedupe.newest_at is None or at > dedupe.newest_at else dedupe.newest_at
    edge = newest - policy.dedupe_retention
    positions = {**dedupe.positions, str(raw.partition): (raw.offset, raw.index)}
    # Whether ``at`` is before the horizon does not matter, only whether its bucket is live:
    # that keeps the list independent of the arrival order (module docstring).
    buckets = {*dedupe.buckets, bucket_of(at)}
    return Dedupe(
        positions=dict(sorted(positions.items())),
        newest_at=newest,
        buckets=tuple(sorted(b for b in buckets if _live(b, edge))),
    )


def index_change(
    before: Dedupe, after: Dedupe, key: str, at: datetime, policy: Policy
) -> IndexChange:
    """The index writes that go with ``before -> after`` for the input just applied."""
    bucket = bucket_of(at)
    return IndexChange(
        remember=(bucket, key) if bucket in after.buckets else None,
        expire=tuple(b for b in before.buckets if b not in after.buckets),
    )


@dataclass
class MemoryIndex:
    """The dedupe index of many owners in a dict: unit tests and the plain-loop benchmark."""

    entries: dict[str, dict[int, set[str]]] = field(default_factory=dict)

    def lookup(self, owner: str) -> SeenLookup:
        buckets = self.entries.get(owner, {})

        def seen(bucket: int, key: str) -> bool:
            return key in buckets.get(bucket, ())

        return seen

    def apply(self, owner: str, change: IndexChange) -> None:
        buckets = self.entries.setdefault(owner, {})
        for bucket in change.expire:
            buckets.pop(bucket, None)
        if change.remember is not None:
            bucket, key = change.remember
            buckets.setdefault(bucket, set()).add(key)

    def keys(self, owner: str) -> set[str]:
        """Every key remembered for ``owner`` (tests)."""
        return set().union(*self.entries.get(owner, {}).values())
