"""``mailpulse republish`` re-emits the latest command of every address, same ids, and
leaves the state alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from processors.ops.common import describe_group
from tests.integration.helpers import eventually, latest_by_key, read_all
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import running_ingest


def _latest(commands: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(address, command_id) of the last command per address, in topic order."""
    last = {c["address"]: c["command_id"] for c in commands}
    return set(last.items())


async def _cleanup_policy(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})]
        )
    finally:
        await admin.close()
    [resource] = response.to_object()["resources"]
    [entry] = resource["config_entries"]
    return str(entry["config_value"])


async def test_republish_same_ids_state_untouched(kafka_bootstrap: str, tmp_path: Path) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    at = "2026-05-14T10:00:00Z"
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        with p.worker():
            for n, (kind, email) in enumerate(
                [
                    ("bounced.hard", "hard@example.com"),
                    ("complained", "spam@example.com"),
                    ("unsubscribed", "unsub@example.com"),
                    ("delivered", "fine@example.com"),
                ]
            ):
                assert await p.post_nexus(s, nexus_event(kind, email, n=n, at=at)) == 200
            # Suppressed by soft bounces, then lifted by a later delivery: two commands,
            # the latest is the unsuppress.
            for i in range(3):
                soft = nexus_event("bounced.soft", "soft@example.com", n=10 + i, at=at)
                assert await p.post_nexus(s, soft) == 200
            await eventually(
                p.commands, lambda cs: any(c["address"] == "soft@example.com" for c in cs), 120
            )
            later = nexus_event("delivered", "soft@example.com", n=20, at="2026-05-14T11:00:00Z")
            assert await p.post_nexus(s, later) == 200
            commands = await eventually(p.commands, lambda cs: len(cs) == 5, timeout=120)
            table, messages = await p.settled()

            live = await p.mailpulse("republish")
            assert live.code == 1, live
            assert "refusing to re-send" in live.err, live.err

            replica = p.topic("suppression.replica")
            done = await p.mailpulse("republish", "--to", replica)
            assert done.code == 0, done
            assert "re-published 4 command(s)" in done.out, done.out
            assert "0 mismatch(es)" in done.out, done.out

    latest = _latest(commands)
    assert {a for a, _ in latest} == {
        "hard@example.com",
        "spam@example.com",
        "unsub@example.com",
        "soft@example.com",
    }
    soft_last = [c for c in commands if c["address"] == "soft@example.com"][-1]
    assert soft_last["change"]["action"] == "unsuppress"

    copied = await read_all(kafka_bootstrap, replica)
    assert _latest(await _commands_of(kafka_bootstrap, replica)) == latest
    assert len(copied) == len(latest)
    # Byte for byte the latest command per address, keyed by address.
    source = latest_by_key(await read_all(kafka_bootstrap, p.topic("suppression.commands")))
    assert {r.key: r.value for r in copied} == source
    assert await _cleanup_policy(kafka_bootstrap, replica) == "compact"
    # State untouched, and nothing new on the live topic.
    assert await p.table("addresses") == table
    assert await p.table("messages") == messages
    assert _pairs(await p.commands()) == _pairs(commands)

    # With the workers stopped it may re-send into the live topic: same ids again.
    await eventually(lambda: describe_group(kafka_bootstrap, p.group()), lambda g: not g.active)
    into_live = await p.mailpulse("republish")
    assert into_live.code == 0, into_live
    after = await p.commands()
    assert _pairs(after) == sorted(_pairs(commands) + list(latest))
    assert _latest(after) == latest


def _pairs(commands: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((c["address"], c["command_id"]) for c in commands)


async def _commands_of(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in await read_all(bootstrap, topic)]
