"""What a sender's send path imports: ``SuppressionList.is_suppressed(address, scope)``.

It reads the table ``mailpulse sync`` keeps (SQLite or PostgreSQL) and nothing else: no
Kafka client, no processors. Addresses are looked up in the canonical form the processors
key commands by (``processors.addresses``), so ``Bob@Example.COM`` finds ``bob@example.com``.
"""

from __future__ import annotations

import threading
from types import TracebackType

from pydantic import SecretStr

from processors.addresses import NormaliseOptions, normalise_address
from processors.errors import NormaliseError
from schemas.common import SuppressionScope
from sync.errors import SyncError
from sync.settings import SyncSettings
from sync.store import Store, Tables, open_store

# What each kind of mail must check. ``all`` covers every message (transactional too);
# marketing mail is also stopped by an ``all`` suppression (the scopes are independent
# in the commands: a hard bounce marks ``all`` only).
CHECKED: dict[SuppressionScope, tuple[SuppressionScope, ...]] = {
    "all": ("all",),
    "marketing": ("all", "marketing"),
}


class NotSynced(SyncError):
    """The table does not exist yet: ``mailpulse sync`` has never run on this database."""


class SuppressionList:
    """The sender's view of suppressions; safe to share between threads."""

    def __init__(
        self,
        dsn: str | SecretStr,
        table: str = "mailpulse_suppressions",
        normalise: NormaliseOptions | None = None,
    ) -> None:
        secret = dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn
        self._tables = Tables(table)
        self._normalise = normalise or NormaliseOptions()
        self._store: Store = open_store(secret)
        self._lock = threading.Lock()
        if not self._store.exists(self._tables):
            self._store.close()
            raise NotSynced(
                f"no table {self._tables.state} in {self._store.dsn}: run `mailpulse sync` "
                "against this database first"
            )

    @classmethod
    def from_settings(cls, settings: SyncSettings | None = None) -> SuppressionList:
        """The list ``mailpulse sync`` writes, as the ``[sync]`` settings name it."""
        s = settings or SyncSettings()
        return cls(s.dsn, s.table, s.normalise)

    def is_suppressed(self, address: str, scope: SuppressionScope = "all") -> bool:
        """Whether mail of ``scope`` to ``address`` must not be sent.

        ``scope="all"`` for transactional mail, ``"marketing"`` for marketing mail (true
        when either scope is suppressed). Raises ``ValueError`` for a string that is not
        an email address.
        """
        try:
            canonical = normalise_address(address, self._normalise)
        except NormaliseError as exc:
            raise ValueError(f"not an email address: {exc.detail}") from None
        with self._lock:
            return self._store.is_suppressed(canonical, CHECKED[scope], self._tables)

    def close(self) -> None:
        with self._lock:
            self._store.close()

    def __enter__(self) -> SuppressionList:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
