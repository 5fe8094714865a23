"""``mailpulse sync`` that waits between each batch's database commit and its offset
commit, and says so on stdout (``db-committed``): a test's kill -9 then lands in exactly
the window where a crash must neither skip nor apply twice. Otherwise the real command."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable

from processors.ops.cli import main
from sync.apply import Plan
from sync.store import Tables
from sync.subscriber import Database, Record

PAUSE_S = float(os.environ.get("MAILPULSE_TEST_SYNC_PAUSE_S", "1"))
_apply = Database.apply


async def _apply_then_pause(self: Database, records: Iterable[Record], tables: Tables) -> Plan:
    step = await _apply(self, records, tables)
    print(f"db-committed fresh={len(step.fresh)} repeats={step.repeats}", flush=True)
    await asyncio.sleep(PAUSE_S)
    return step


if __name__ == "__main__":
    Database.apply = _apply_then_pause  # type: ignore[method-assign]
    sys.exit(main(["sync"]))
