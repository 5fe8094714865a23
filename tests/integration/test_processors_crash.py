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

from tests.integration.helpers import read_all, wait_committed
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import running_ingest
from tests.integration.test_processors import eventually

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


def _events(n: int, addresses: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        minute, second = divmod(rng.randrange(3600), 60)
        at = f"2026-05-14T09:{minute:02d}:{second:02d}Z"
        email = f"user{rng.randrange(addresses)}@example.com"
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


async def test_kill_minus_nine_mid_stream_matches_undisturbed_run(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path, raw_partitions=1)
    events = _events(600, addresses=40)
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
        await _all_committed(p, "ref", raw_records=len(events))
        ref = await _quiet(lambda: addresses("ref"))
        ref_messages = await _quiet(lambda: p.table("messages", "ref"))
    ref_commands = {c["command_id"] for c in await p.commands("ref")}
    assert set(ref) == distinct
    assert ref_commands, "the stream holds hard bounces and complaints: expected commands"

    with p.worker("crash", _generation_env("crash")) as worker:
        await eventually(
            lambda: addresses("crash"), lambda t: len(t) >= len(distinct) // 3, timeout=180
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    with p.worker("crash", _generation_env("crash")):
        crash = await eventually(lambda: addresses("crash"), lambda t: t == ref, timeout=180)
        crash_messages = await eventually(
            lambda: p.table("messages", "crash"), lambda t: t == ref_messages, timeout=60
        )
    assert crash == ref, _explain(crash, ref)
    assert crash_messages == ref_messages
    assert {c["command_id"] for c in await p.commands("crash")} == ref_commands


async def _all_committed(p: Pipeline, gen: str, raw_records: int) -> None:
    # The raw topic first: once it is committed, the normaliser has put every hop record
    # on the broker, so the hops' end offsets are final.
    inputs = [(p.topic("webhooks.raw"), raw_records)]
    inputs += [(p.topic(f"{hop}.{gen}"), 0) for hop in ("email.events", "message.events")]
    for topic, known in inputs:
        total = known or len(await read_all(p.bootstrap, topic))
        committed = await wait_committed(p.bootstrap, p.group(gen), topic, total, timeout=180)
        assert committed == total, f"{topic}: {committed} of {total} offsets committed"


def _explain(crash: dict[str, Any], ref: dict[str, Any]) -> str:
    """Per differing address: the provider event ids one run applied and the other not."""
    lines = []
    for address in sorted(set(crash) | set(ref)):
        if crash.get(address) != ref.get(address):
            got = set((crash.get(address) or {}).get("dedupe", {}).get("seen", {}))
            want = set((ref.get(address) or {}).get("dedupe", {}).get("seen", {}))
            lines.append(
                f"{address}: missing after the kill {sorted(want - got)}, "
                f"extra {sorted(got - want)}"
            )
    return "\n".join(lines)


async def _quiet(probe: Any, rounds: int = 6, timeout: float = 90.0) -> Any:
    """Poll until the result stops changing for a few rounds; fail if it never does."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    last = await probe()
    stable = 0
    while stable < rounds:
        assert time.monotonic() < deadline, f"still changing after {timeout:.0f} s"
        await asyncio.sleep(0.5)
        now = await probe()
        stable = stable + 1 if now == last else 0
        last = now
    return last
