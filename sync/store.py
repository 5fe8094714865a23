"""The sender's suppression table: one small interface, SQLite and PostgreSQL behind it.

Both run the same SQL (only column types, placeholders and the transaction calls differ),
so they apply a batch with the same semantics: in one transaction, look up which command
ids the journal already holds, insert the new ones, and upsert each (address, scope) row
*only if the command is newer* by topic position (``sync/apply.py``). Blocking calls: the
subscriber runs them on a thread of its own, a sender calls them directly.
"""

from __future__ import annotations

import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sync.apply import Delivered, Plan, Row, plan
from sync.dsn import redact, scheme, scrub
from sync.errors import ConfigError, StoreUnavailable

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
# The row's columns that the newest command sets, in table order.
STATE_COLUMNS = (
    "suppressed",
    "reason",
    "cause",
    "since",
    "command_id",
    "issued_at",
    "kafka_partition",
    "kafka_offset",
    "updated_at",
)
_CHUNK = 500  # ids per IN (...) lookup, far below either database's parameter limit


@dataclass(frozen=True)
class Tables:
    """The suppression table and its journal of applied command ids."""

    state: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.state):
            raise ConfigError(f"table name {self.state!r} must match {_NAME.pattern}")

    @property
    def applied(self) -> str:
        return f"{self.state}_applied"

    def building(self) -> Tables:
        """Where a rebuild writes before it swaps the result in."""
        return Tables(f"{self.state}_next")


def _ddl(t: Tables, ts: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {t.state} (
            address TEXT NOT NULL,
            scope TEXT NOT NULL,
            suppressed BOOLEAN NOT NULL,
            reason TEXT,
            cause TEXT,
            since {ts},
            command_id TEXT NOT NULL,
            issued_at {ts} NOT NULL,
            kafka_partition INTEGER NOT NULL,
            kafka_offset BIGINT NOT NULL,
            commands BIGINT NOT NULL,
            updated_at {ts} NOT NULL,
            PRIMARY KEY (address, scope))""",
        f"""CREATE TABLE IF NOT EXISTS {t.applied} (
            command_id TEXT PRIMARY KEY,
            address TEXT NOT NULL,
            action TEXT NOT NULL,
            scope TEXT NOT NULL,
            reason TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL,
            kafka_offset BIGINT NOT NULL,
            applied_at {ts} NOT NULL)""",
    ]


def _upsert(t: str) -> str:
    newer = (
        f"(excluded.kafka_partition <> {t}.kafka_partition "
        f"OR excluded.kafka_offset > {t}.kafka_offset)"
    )
    merged = ", ".join(
        f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE {t}.{c} END" for c in STATE_COLUMNS
    )
    columns = ("address", "scope", *STATE_COLUMNS, "commands")
    return (
        f"INSERT INTO {t} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT (address, scope) DO UPDATE SET {merged}, "
        f"commands = {t}.commands + excluded.commands"
    )


class Store(ABC):
    """A connection to the sender's database, holding the suppression table."""

    timestamp_type: str
    # Run after each table rename of a swap, if set (PostgreSQL's index names stay behind).
    rename_index: str | None = None
    # The driver's own errors: the subscriber reports them as ``StoreUnavailable``.
    driver_errors: tuple[type[Exception], ...] = ()
    dsn: str  # redacted: safe to log

    @abstractmethod
    def _transaction(self) -> Any: ...

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def _ts(self, at: datetime | None) -> Any:
        return at

    def prepare(self, tables: Tables) -> None:
        """Create the table and its journal unless they exist."""
        with self._transaction():
            for statement in _ddl(tables, self.timestamp_type):
                self._execute(statement)

    def drop(self, tables: Tables) -> None:
        with self._transaction():
            self._execute(f"DROP TABLE IF EXISTS {tables.state}")
            self._execute(f"DROP TABLE IF EXISTS {tables.applied}")

    def apply(self, batch: Sequence[Delivered], now: datetime, tables: Tables) -> Plan:
        """Apply one batch in one transaction; what it did (repeats change nothing).

        The journal's primary key is the last word on a repeat: two subscribers applying
        one command at once (a rebalance overlap) make one transaction fail, and its
        batch, uncommitted, comes again.
        """
        with self._transaction():
            done = self._applied(tables, {d.command.command_id for d in batch})
            step = plan(batch, done)
            self._executemany(
                f"INSERT INTO {tables.applied} (command_id, address, action, scope, reason, "
                "kafka_partition, kafka_offset, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [self._journal_row(d, now) for d in step.fresh],
            )
            self._executemany(
                _upsert(tables.state),
                [self._state_row(r, now, step.counts[r.address]) for r in step.rows],
            )
        return step

    def _journal_row(self, d: Delivered, now: datetime) -> tuple[Any, ...]:
        c = d.command
        change = c.change
        return (c.command_id, c.address, change.action, change.scope, change.reason,
                d.partition, d.offset, self._ts(now))  # fmt: skip

    def _state_row(self, r: Row, now: datetime, commands: int) -> tuple[Any, ...]:
        return (r.address, r.scope, r.suppressed, r.reason, r.cause, self._ts(r.since),
                r.command_id, self._ts(r.issued_at), r.partition, r.offset, self._ts(now),
                commands)  # fmt: skip

    def _applied(self, tables: Tables, ids: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(ids)
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT command_id FROM {tables.applied} WHERE command_id IN ({marks})"
            found.update(row[0] for row in self._execute(sql, chunk))
        return found

    def swap(self, built: Tables, into: Tables) -> None:
        """Replace ``into`` by ``built`` in one transaction (readers see old or new)."""
        with self._transaction():
            for live, fresh in ((into.state, built.state), (into.applied, built.applied)):
                self._execute(f"DROP TABLE IF EXISTS {live}")
                self._execute(f"ALTER TABLE {fresh} RENAME TO {live}")
                if self.rename_index:
                    self._execute(self.rename_index.format(old=fresh, new=live))

    def is_suppressed(self, address: str, scopes: Sequence[str], tables: Tables) -> bool:
        marks = ", ".join("?" * len(scopes))
        sql = (
            f"SELECT 1 FROM {tables.state} WHERE address = ? AND scope IN ({marks}) "
            "AND suppressed LIMIT 1"
        )
        return bool(self._execute(sql, [address, *scopes]))

    def counts(self, tables: Tables) -> dict[str, int]:
        """Rows, suppressed rows and applied commands (0 before the first run)."""
        if not self.exists(tables):
            return {"rows": 0, "suppressed": 0, "applied": 0}
        suppressed_rows = "COALESCE(SUM(CASE WHEN suppressed THEN 1 ELSE 0 END), 0)"
        [(rows, suppressed)] = self._execute(
            f"SELECT COUNT(*), {suppressed_rows} FROM {tables.state}"
        )
        [(applied,)] = self._execute(f"SELECT COUNT(*) FROM {tables.applied}")
        return {"rows": int(rows), "suppressed": int(suppressed), "applied": int(applied)}

    @abstractmethod
    def exists(self, tables: Tables) -> bool: ...


class SqliteStore(Store):
    """SQLite (stdlib ``sqlite3``) in WAL mode, so senders read while the subscriber writes."""

    timestamp_type = "TEXT"
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.dsn = f"sqlite:///{path}"
        # Autocommit mode: transactions are the explicit BEGIN/COMMIT below. One thread
        # at a time uses the connection (the subscriber's DB thread), not always the one
        # that opened it.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open {self.dsn}: {exc}") from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _ts(self, at: datetime | None) -> Any:
        return None if at is None else at.isoformat()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.executemany(sql, rows)

    def exists(self, tables: Tables) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return bool(self._execute(sql, [tables.state]))

    def close(self) -> None:
        self._conn.close()


class PostgresStore(Store):
    """PostgreSQL through psycopg 3 (autocommit; transactions are explicit)."""

    timestamp_type = "TIMESTAMPTZ"
    rename_index = "ALTER INDEX IF EXISTS {old}_pkey RENAME TO {new}_pkey"

    def __init__(self, dsn: str) -> None:
        import psycopg  # only senders on PostgreSQL need the driver

        self.dsn = redact(dsn)
        self.driver_errors = (psycopg.Error,)
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            why = scrub(str(exc), dsn).strip()
            raise StoreUnavailable(f"cannot connect to {self.dsn}: {why}") from None
        except psycopg.Error as exc:  # libpq could not parse the DSN; its text quotes it
            why = scrub(str(exc), dsn).strip()
            raise ConfigError(f"the DSN {self.dsn} is not valid: {why}") from None

    def _transaction(self) -> Any:
        return self._conn.transaction()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self._conn.execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cursor:
                cursor.executemany(sql.replace("?", "%s"), rows)

    def exists(self, tables: Tables) -> bool:
        found = self._execute("SELECT to_regclass(CAST(? AS text))", [tables.state])
        return found[0][0] is not None

    def close(self) -> None:
        self._conn.close()


def open_store(dsn: str) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://...``."""
    kind = scheme(dsn)
    if kind == "sqlite":
        rest = dsn[len("sqlite:") :]
        if not rest.startswith("///") or len(rest) == 3:
            raise ConfigError("a SQLite DSN is sqlite:///relative/path.db or sqlite:////abs.db")
        return SqliteStore(Path(rest[3:]))
    if kind in ("postgresql", "postgres"):
        return PostgresStore(dsn)
    # The DSN itself is not echoed: without a scheme it may be libpq's key=value form,
    # password included.
    shown = "no URL scheme" if kind is None else f"unknown DSN scheme {kind!r}"
    raise ConfigError(f"{shown}: use sqlite:///PATH or postgresql://...")
