"""A minimal Faust app with a RocksDB table, run as a worker process by the recovery test.

Sums integer values per key into the table and publishes each new total, so the test can
see from outside what the table holds. Configured by environment variables.

It touches the file ``SMOKE_READY`` once table recovery has completed and it owns every
input partition. Faust's stream iterator drops records that arrive while a rebalance or
a recovery has the stream suspended (DESIGN.md §6; the processors guard against it with
processors/runtime/offsets.py, this plain app does not), so the test sends its input only
once no rebalance is left to come: the killed member is out of the group.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, cast

import faust

BOOTSTRAP = os.environ["SMOKE_BOOTSTRAP"]
READY = Path(os.environ["SMOKE_READY"])
NAME = os.environ["SMOKE_NAME"]

app = faust.App(
    NAME,
    broker=f"kafka://{BOOTSTRAP}",
    store="rocksdb://",
    datadir=os.environ["SMOKE_DATADIR"],
    topic_partitions=2,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    # A killed member must leave the group quickly so the restarted worker gets its partitions.
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
)
numbers = app.topic(
    f"{NAME}.numbers",
    key_type=str,
    partitions=2,
    key_serializer="raw",
    value_serializer="json",
)
totals_out = app.topic(
    f"{NAME}.totals",
    key_type=str,
    partitions=1,
    key_serializer="raw",
    value_serializer="json",
)
totals = app.Table(f"{NAME}-totals", default=int, partitions=2, key_type=str, value_type=int)


@app.agent(numbers)
async def add(stream: faust.StreamT[int]) -> None:
    async for key, value in stream.items():
        totals[key] += value
        await totals_out.send(key=key, value=totals[key])


@app.timer(0.5)  # type: ignore[untyped-decorator]
async def report_ready() -> None:
    owned = {tp for tp in app.consumer.assignment() if tp.topic == numbers.get_topic_name()}
    recovered = cast(Any, app.tables).recovery.completed.is_set()
    if recovered and not app.rebalancing and len(owned) == 2:
        READY.touch()  # noqa: ASYNC240 (a few microseconds, twice a second)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()
