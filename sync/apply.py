"""What one poll's batch of suppression commands does to the sender's table. Pure: no I/O.

Latest wins by topic position, not by ``issued_at``. Commands are keyed by address, so an
address's commands sit in one partition in the order the processors decided them, and
each carries the address's *full* suppression state: the newest one is the truth, which
is also what compaction keeps. ``issued_at`` is the event time of a cause and is not
monotonic per address (a delivery that arrives late, yet is earlier in event time than
the third soft bounce, lifts that suppression with an older ``issued_at``), so ordering
by it would keep a lifted suppression. A command therefore replaces a row only when it is
newer by ``(partition, offset)``: an older one (a replay, a rewind) changes nothing.

Dedupe by ``command_id``: a command already applied (a redelivery after a crash, a
re-publish) is a repeat and changes nothing. The same id at a later offset carries a
state that was already applied once; the contract (schemas/commands.py) lets consumers
drop it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import get_args

from schemas.commands import SuppressionCommand
from schemas.common import SuppressionScope

SCOPES: tuple[SuppressionScope, ...] = get_args(SuppressionScope)


@dataclass(frozen=True)
class Delivered:
    """One command as the topic delivered it."""

    partition: int
    offset: int
    command: SuppressionCommand


@dataclass(frozen=True)
class Row:
    """One (address, scope) row of the sender's table, as the newest command says."""

    address: str
    scope: SuppressionScope
    suppressed: bool
    reason: str | None
    cause: str | None
    since: datetime | None
    command_id: str
    issued_at: datetime
    partition: int
    offset: int


@dataclass(frozen=True)
class Plan:
    """What a batch applies: the new commands, the repeats, the rows to merge."""

    fresh: tuple[Delivered, ...] = ()  # first delivery of each command not applied before
    repeats: int = 0  # deliveries of a command already applied (or twice in this batch)
    rows: tuple[Row, ...] = ()  # per (address, scope): the newest fresh command's state
    # Per address: how many fresh commands the batch applies (the row's counter adds them).
    counts: dict[str, int] = field(default_factory=dict)


def rows_of(d: Delivered) -> list[Row]:
    """The rows a command sets: every scope, from its full state (absent = not suppressed)."""
    c = d.command
    rows = []
    for scope in SCOPES:
        s = c.suppression.get(scope)
        rows.append(
            Row(
                address=c.address,
                scope=scope,
                suppressed=s is not None,
                reason=None if s is None else s.reason,
                cause=None if s is None else s.cause,
                since=None if s is None else s.since,
                command_id=c.command_id,
                issued_at=c.issued_at,
                partition=d.partition,
                offset=d.offset,
            )
        )
    return rows


def is_newer(candidate: Delivered | Row, current: Delivered | Row) -> bool:
    """Whether ``candidate`` replaces ``current``: a later offset of the same partition.

    An address changes partition only if the topic is re-partitioned; then the command
    arriving now is the newer one. The SQL upsert (sync/store.py) says the same.
    """
    return candidate.partition != current.partition or candidate.offset > current.offset


def first_deliveries(batch: Iterable[Delivered]) -> list[Delivered]:
    """Each command id's first delivery in ``batch``, in batch order."""
    seen: set[str] = set()
    first: list[Delivered] = []
    for d in batch:
        if d.command.command_id not in seen:
            seen.add(d.command.command_id)
            first.append(d)
    return first


def plan(batch: Sequence[Delivered], applied: Set[str]) -> Plan:
    """Fold ``batch`` given the ids ``applied`` before it (the store's journal)."""
    first = first_deliveries(batch)
    fresh = [d for d in first if d.command.command_id not in applied]
    newest: dict[str, Delivered] = {}
    counts: dict[str, int] = {}
    for d in fresh:
        address = d.command.address
        counts[address] = counts.get(address, 0) + 1
        current = newest.get(address)
        if current is None or is_newer(d, current):
            newest[address] = d
    rows = tuple(row for d in newest.values() for row in rows_of(d))
    return Plan(
        fresh=tuple(fresh),
        repeats=len(batch) - len(fresh),
        rows=rows,
        counts=counts,
    )
