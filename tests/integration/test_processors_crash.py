"""kill -9 of a worker mid-stream loses nothing and counts nothing twice.

Two generations read the same raw topic: ``ref`` runs undisturbed, ``crash`` is killed
with SIGKILL part-way and restarted. Their tables and the set of suppression command ids
must be equal.

The raw topic has one partition here. With several, the normaliser interleaves raw
partitions differently in every run, so an address may see its events in another order:
the final state is the same (transitions are order-insensitive) but the intermediate
commands can differ (e.g. a soft-bounce suppression lifted by a later-arriving delivery).
One partition makes the arrival order the same in both runs, so any difference in the
command ids can only come from the kill.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.helpers import eventually
from tests.integration.pipeline import (
    Pipeline,
    explain_counts,
    generation_env,
    mixed_events,
)
from tests.integration.stack import running_ingest

FIRST = 20  # posted before the worker is known to be applying
PACE_S = 0.01  # between webhooks: the rest of the stream outlasts the wait for the kill


@pytest.mark.parametrize("hot_share", [0.0, 0.7], ids=["spread", "hot_key"])
async def test_kill_minus_nine_mid_stream_matches_undisturbed_run(
    kafka_bootstrap: str, tmp_path: Path, hot_share: float
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path, raw_partitions=1)
    events = mixed_events(600, addresses=40, hot_share=hot_share)
    distinct = {e["data"]["email"] for e in events}
    posted = 0

    async def post(session: aiohttp.ClientSession, batch: list[dict[str, Any]]) -> None:
        nonlocal posted
        for e in batch:
            assert await p.post_nexus(session, e) == 200
            posted += 1
            await asyncio.sleep(PACE_S)

    async def addresses() -> dict[str, Any]:
        return await p.table("addresses", "crash")

    # The worker is killed while webhooks still arrive: it has records it has not
    # committed, and more come after it is gone. It restarts on the local state the
    # killed one left (same data dir).
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        with p.worker("crash", generation_env("crash"), datadir="crash") as worker:
            await post(s, events[:FIRST])
            await eventually(addresses, bool, timeout=180, what="the worker applying events")
            rest = asyncio.create_task(post(s, events[FIRST:]))
            await eventually(
                addresses, lambda t: len(t) >= len(distinct) // 3, timeout=180,
                what="a third of the addresses applied",
            )  # fmt: skip
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            posted_at_kill = posted
            await rest
    assert posted_at_kill < len(events), "the stream had ended before the kill"
    with p.worker("crash", generation_env("crash"), datadir="crash"):
        crash, crash_messages = await p.settled("crash", hop_suffix=".crash")

    with p.worker("ref", generation_env("ref")):
        ref, ref_messages = await p.settled("ref", hop_suffix=".ref")
    ref_commands = {c["command_id"] for c in await p.commands("ref")}
    assert set(ref) == distinct
    assert ref_commands, "the stream holds hard bounces and complaints: expected commands"
    assert crash == ref, explain_counts(crash, ref)
    assert crash_messages == ref_messages
    assert {c["command_id"] for c in await p.commands("crash")} == ref_commands
