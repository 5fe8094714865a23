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

import random
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.helpers import eventually, quiet
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import running_ingest

KINDS = [
    "delivered",
    "delivered",
    "opened",
    "clicked",
    "bounced.soft",
    "bounced.soft",
    "bounced.hard",
    "complained",
    "unsubscribed",
]


def _events(n: int, addresses: int, seed: int = 11, hot_share: float = 0.0) -> list[dict[str, Any]]:
    """``n`` events over ``addresses`` (``hot_share`` of them for ``user0``), then retries."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        minute, second = divmod(rng.randrange(3600), 60)
        at = f"2026-05-14T09:{minute:02d}:{second:02d}Z"
        hot = rng.random() < hot_share
        email = f"user{0 if hot else rng.randrange(addresses)}@example.com"
        events.append(
            nexus_event(
                rng.choice(KINDS), email, n=i, at=at, message=f"msg_{rng.randrange(n // 3)}"
            )
        )
    # Provider retries: some events delivered again later in the stream.
    events += rng.sample(events, n // 10)
    return events


def _generation_env(gen: str) -> dict[str, str]:
    # Separate internal and output topics per generation, one shared raw topic.
    return {
        f"MAILPULSE_PROCESSORS__TOPICS__{name.upper()}": f"{topic}.{gen}"
        for name, topic in [
            ("email_events", "email.events"),
            ("message_events", "message.events"),
            ("dlq", "webhooks.dlq"),
            ("suppression", "suppression.commands"),
            # Own control topic: each run is the active generation of its own world.
            ("control", "mailpulse.control"),
        ]
    }


@pytest.mark.parametrize("hot_share", [0.0, 0.7], ids=["spread", "hot_key"])
async def test_kill_minus_nine_mid_stream_matches_undisturbed_run(
    kafka_bootstrap: str, tmp_path: Path, hot_share: float
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path, raw_partitions=1)
    events = _events(600, addresses=40, hot_share=hot_share)
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        for e in events:
            assert await p.post_nexus(s, e) == 200
    distinct = {e["data"]["email"] for e in events}

    async def addresses(gen: str) -> dict[str, Any]:
        return await p.table("addresses", gen)

    with p.worker("ref", _generation_env("ref")):
        await eventually(lambda: addresses("ref"), lambda t: set(t) == distinct, timeout=180)
        # Let the last writes land too: every record of the raw topic and of both hops
        # committed (an offset is committed only once its table write is acknowledged),
        # then both tables stop changing.
        await p.wait_all_committed("ref", raw_records=len(events), hop_suffix=".ref")
        ref = await quiet(lambda: addresses("ref"))
        ref_messages = await quiet(lambda: p.table("messages", "ref"))
    ref_commands = {c["command_id"] for c in await p.commands("ref")}
    assert set(ref) == distinct
    assert ref_commands, "the stream holds hard bounces and complaints: expected commands"

    # The restarted worker keeps the local state the killed one left (same data dir).
    with p.worker("crash", _generation_env("crash"), datadir="crash") as worker:
        await eventually(
            lambda: addresses("crash"), lambda t: len(t) >= len(distinct) // 3, timeout=180
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    with p.worker("crash", _generation_env("crash"), datadir="crash"):
        crash = await eventually(lambda: addresses("crash"), lambda t: t == ref, timeout=180)
        crash_messages = await eventually(
            lambda: p.table("messages", "crash"), lambda t: t == ref_messages, timeout=60
        )
    assert crash == ref, _explain(crash, ref)
    assert crash_messages == ref_messages
    assert {c["command_id"] for c in await p.commands("crash")} == ref_commands


def _explain(crash: dict[str, Any], ref: dict[str, Any]) -> str:
    """Per differing address: the event counts of both runs."""
    lines = []
    for address in sorted(set(crash) | set(ref)):
        if crash.get(address) != ref.get(address):
            got = (crash.get(address) or {}).get("counts")
            want = (ref.get(address) or {}).get("counts")
            lines.append(f"{address}: counts after the kill {got}, undisturbed {want}")
    return "\n".join(lines)
