"""Replay by resetting the consumer group, with Kafka's own tool or ``mailpulse replay``, is
safe: same state, and no command is published again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient

from processors.ops.common import describe_group
from tests.integration.helpers import eventually, read_all, wait_committed
from tests.integration.pipeline import Pipeline, mixed_events, nexus_event
from tests.integration.stack import running_ingest


def consumer_groups(bootstrap: str, *args: str) -> str:
    """Kafka's ConsumerGroupCommand from the kafka-tools jar (what operators already use)."""
    cmd = [
        sys.executable,
        "-m",
        "localkafka",
        "tool",
        "consumer-groups",
        "--",
        "--bootstrap-server",
        bootstrap,
        *args,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@dataclass
class Processed:
    """The state after a worker processed the whole raw topic, then stopped."""

    addresses: dict[str, Any]
    messages: dict[str, Any]
    command_ids: list[str]
    raw_records: int


async def _process(p: Pipeline, n: int, addresses: int, during: Any = None) -> Processed:
    """Post ``n`` events (plus three certain suppressions), run a worker until the tables
    hold every address, call ``during()`` while it still runs, then stop it."""
    events = mixed_events(n, addresses=addresses, seed=5)
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        for e in events:
            assert await p.post_nexus(s, e) == 200
        # A few hand-made suppressions so the command topic certainly has content.
        for k, kind in enumerate(["bounced.hard", "complained", "unsubscribed"]):
            event = nexus_event(
                kind, f"replay{k}@example.com", n=9000 + k, at="2026-05-14T12:00:00Z"
            )
            assert await p.post_nexus(s, event) == 200
    distinct = {e["data"]["email"] for e in events} | {f"replay{k}@example.com" for k in range(3)}

    with p.worker():
        await eventually(lambda: p.table("addresses"), lambda t: set(t) == distinct, timeout=180)
        before, messages_before = await p.settled()
        if during is not None:
            await during()
    commands_before = _ids(await p.commands())
    assert len(commands_before) >= 3
    raw = len(await read_all(p.bootstrap, p.topic("webhooks.raw")))
    return Processed(before, messages_before, commands_before, raw)


async def _replays_to_same_state(p: Pipeline, before: Processed, wait_consumed: Any) -> None:
    """Restart the worker after a reset; same tables, and not one command published again."""
    with p.worker():
        await wait_consumed()
        after, messages_after = await p.settled()
    assert after == before.addresses
    assert messages_after == before.messages
    # Same records, none added: a replay publishes no command again (not even a duplicate).
    assert _ids(await p.commands()) == before.command_ids


def _ids(commands: list[dict[str, Any]]) -> list[str]:
    return sorted(str(c["command_id"]) for c in commands)


async def test_reset_to_earliest_reproduces_state_without_new_commands(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    before = await _process(p, 300, addresses=25)

    out = consumer_groups(
        kafka_bootstrap,
        "--group",
        p.group(),
        "--reset-offsets",
        "--to-earliest",
        "--all-topics",
        "--execute",
    )
    assert p.topic("webhooks.raw") in out

    async def consumed() -> None:
        # Wait until the group has consumed the whole raw topic again.
        await eventually(
            lambda: _lag(kafka_bootstrap, p.group()), lambda lag: lag == 0, timeout=180
        )

    await _replays_to_same_state(p, before, consumed)


def _plan(out: str, topic: str) -> dict[int, tuple[str, str]]:
    """partition -> (current, new) from ``mailpulse replay``'s plan table."""
    rows = [line.split() for line in out.splitlines()]
    return {int(r[1]): (r[2], r[3]) for r in rows if len(r) == 4 and r[0] == topic}


async def test_mailpulse_replay_refuses_live_group_then_replays_exactly(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    raw_topic = p.topic("webhooks.raw")

    async def while_running() -> None:
        refused = await p.mailpulse("replay", "--to-earliest", "--execute")
        assert refused.code == 1, refused
        assert "refusing to reset" in refused.err, refused
        assert "1 member(s)" in refused.err, refused
        assert "Traceback" not in refused.err
        assert sum((await _offsets(p)).values()) > 0  # nothing moved

    before = await _process(p, 150, addresses=15, during=while_running)
    await eventually(lambda: describe_group(kafka_bootstrap, p.group()), lambda g: not g.active)
    consumed = await _offsets(p)
    assert sum(consumed.values()) == before.raw_records

    # A time later than every record: each partition stays at its end (= where it is).
    later = await p.mailpulse("replay", "--to-datetime", "2999-01-01T00:00:00Z")
    assert later.code == 0, later
    assert _plan(later.out, raw_topic) == {tp: (str(o), str(o)) for tp, o in consumed.items()}

    dry = await p.mailpulse("replay", "--to-earliest")
    assert dry.code == 0, dry
    assert _plan(dry.out, raw_topic) == {tp: (str(o), "0") for tp, o in consumed.items()}
    assert "dry run" in dry.out
    assert await _offsets(p) == consumed

    # --follow: the command resets, then watches the workers (started next) replay.
    following = asyncio.create_task(
        p.mailpulse("replay", "--to-earliest", "--execute", "--follow", "--follow-timeout", "180")
    )
    reset = dict.fromkeys(consumed, 0)
    await eventually(lambda: _offsets(p), lambda o: o == reset, timeout=60, what="the reset")

    async def consumed_again() -> None:
        total = await wait_committed(
            kafka_bootstrap, p.group(), raw_topic, before.raw_records, timeout=180
        )
        assert total == before.raw_records
        done = await following
        assert done.code == 0, done
        total_line = f"raw: {before.raw_records:,}/{before.raw_records:,} records (100%"
        assert total_line in done.out, done.out
        assert f"group {p.group()} has replayed to the end" in done.out

    await _replays_to_same_state(p, before, consumed_again)


async def _offsets(p: Pipeline) -> dict[int, int]:
    """The group's committed offsets on the raw topic, by partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=p.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(p.group())
    finally:
        await admin.close()
    return {
        tp.partition: m.offset for tp, m in offsets.items() if tp.topic == p.topic("webhooks.raw")
    }


async def _lag(bootstrap: str, group: str) -> int:
    out = consumer_groups(bootstrap, "--describe", "--group", group)
    lags = [
        line.split()[5]
        for line in out.splitlines()[1:]
        if len(line.split()) > 5 and line.split()[5].isdigit()
    ]
    return sum(int(x) for x in lags) if lags else -1
