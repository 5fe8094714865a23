"""Replay by resetting the consumer group with Kafka's own tool is safe: same state, and no
command is published again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import running_ingest
from tests.integration.test_processors import eventually
from tests.integration.test_processors_crash import _events, _quiet


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


async def test_reset_to_earliest_reproduces_state_without_new_commands(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    events = _events(300, addresses=25, seed=5)
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        for e in events:
            assert await p.post_nexus(s, e) == 200
        # A few hand-made suppressions so the command topic certainly has content.
        for n, kind in enumerate(["bounced.hard", "complained", "unsubscribed"]):
            event = nexus_event(
                kind, f"replay{n}@example.com", n=9000 + n, at="2026-05-14T12:00:00Z"
            )
            assert await p.post_nexus(s, event) == 200
    distinct = {e["data"]["email"] for e in events} | {f"replay{n}@example.com" for n in range(3)}

    with p.worker():
        await eventually(lambda: p.table("addresses"), lambda t: set(t) == distinct, timeout=180)
        before = await _quiet(lambda: p.table("addresses"))
        messages_before = await _quiet(lambda: p.table("messages"))
    commands_before = await p.commands()
    assert len(commands_before) >= 3

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

    with p.worker():
        # Wait until the group has consumed the whole raw topic again.
        await eventually(
            lambda: _lag(kafka_bootstrap, p.group()), lambda lag: lag == 0, timeout=180
        )
        after = await _quiet(lambda: p.table("addresses"))
        messages_after = await _quiet(lambda: p.table("messages"))
    assert after == before
    assert messages_after == messages_before

    # Same records, none added: a replay publishes no command again (not even a duplicate).
    def ids(commands: list[dict[str, object]]) -> list[str]:
        return sorted(str(c["command_id"]) for c in commands)

    assert ids(await p.commands()) == ids(commands_before)


async def _lag(bootstrap: str, group: str) -> int:
    out = consumer_groups(bootstrap, "--describe", "--group", group)
    lags = [
        line.split()[5]
        for line in out.splitlines()[1:]
        if len(line.split()) > 5 and line.split()[5].isdigit()
    ]
    return sum(int(x) for x in lags) if lags else -1
