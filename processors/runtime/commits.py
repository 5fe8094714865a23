"""A commit the broker refused leaves Faust's record of committed offsets as it was.

Why. Faust's ``Consumer._commit_offsets`` records the offsets it sent as committed
(``_committed_offset``) whether the commit succeeded or not, and its aiokafka driver's
``_commit`` answers False, logging nothing, when the group rebalanced meanwhile ("already
rebalanced"). A rebalance resets that record from the broker (``perform_seek`` reads the
group's committed offsets) and seeks every partition back to it, so records past it come
again. But when the refused commit was under way across the rebalance (it first waits
for the producer's flush, then for the commit's answer), Faust's update lands after that
reset, and Faust believes committed what the broker never took:

* ``ack`` ignores each record below the offset it believes committed, so the records that
  come again after the seek are never acked, and their offsets never committed;
* its commit of the partition moves only past that offset, so only a record beyond it
  gets the partition committed again.

Once the traffic stops, the group's committed offset of the partition stays behind for
good: every later start or rebalance reads those records again, and a check that waits
for the group to commit what it applied waits for ever.

What ``RefusedCommits`` does: when Faust's ``_commit`` answers False, it notes what Faust
holds for those partitions at that moment (after any rebalance during the commit), and
puts it back once ``_commit_offsets`` has overwritten it. The acks of the records that
come again then count, and their commit is made. Faust's record is then just what it
would be had the commit never been tried; nothing is committed here.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

import structlog

log = structlog.get_logger("processors")

# What one ``_commit_offsets`` call must put back: set by the refused ``_commit`` awaited
# in the same task (the two may overlap between tasks: Faust's commit loop and a stop's).
_held: contextvars.ContextVar[dict[Any, int | None] | None] = contextvars.ContextVar(
    "mailpulse_refused_commit", default=None
)


class RefusedCommits:
    """Installed once per consumer (``of``); counts the commits the broker refused."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.refused = 0  # commits answered False, in this process
        self.restored = 0  # partitions whose record Faust had overwritten with a refused one

    @classmethod
    def of(cls, consumer: Any) -> RefusedCommits:
        """The consumer's ``RefusedCommits``, installed on first use."""
        existing: RefusedCommits | None = getattr(consumer, "_mailpulse_refused", None)
        if existing is None:
            existing = cls(consumer)
            existing._install()
            consumer._mailpulse_refused = existing
        return existing

    def _install(self) -> None:
        consumer = self._consumer
        commit = consumer._commit
        commit_offsets = consumer._commit_offsets

        async def commit_or_note(offsets: Mapping[Any, int]) -> bool:
            done: bool = await commit(offsets)
            if not done:
                record = consumer._committed_offset
                # ``get``: Faust's record is a defaultdict, and None is its "nothing".
                _held.set({tp: record.get(tp) for tp in offsets})
            return done

        async def commit_offsets_or_restore(
            offsets: Mapping[Any, int], start_new_transaction: bool = True
        ) -> bool:
            token = _held.set(None)
            try:
                done: bool = await commit_offsets(offsets, start_new_transaction)
                held = _held.get()
            finally:
                _held.reset(token)
            if held is not None:
                self._restore(offsets, held)
            return done

        consumer._commit = commit_or_note
        consumer._commit_offsets = commit_offsets_or_restore

    def _restore(self, sent: Mapping[Any, int], held: Mapping[Any, int | None]) -> None:
        record = self._consumer._committed_offset
        self.refused += 1
        restored: dict[Any, int | None] = {}
        for tp, before in held.items():
            if record.get(tp) != before:
                restored[tp] = before
            if before is None:
                record.pop(tp, None)
            else:
                record[tp] = before
        self.restored += len(restored)
        log.info(
            "commit_refused",
            sent={str(tp): offset for tp, offset in sent.items()},
            # What Faust believed committed, put back where it had overwritten it.
            restored={str(tp): offset for tp, offset in restored.items()},
        )
