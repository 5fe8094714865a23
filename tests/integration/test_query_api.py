"""The query API answers correctly whichever of two workers is asked."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import free_port, running_ingest
from tests.integration.test_processors import eventually
from tests.integration.test_processors_crash import _quiet


async def _get(s: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with s.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_two_workers_route_queries_to_the_partition_owner(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    kinds = ["delivered", "bounced.hard", "unsubscribed", "opened"]
    events = [
        nexus_event(
            kinds[i % 4], f"q{i}@example.com", n=i, at="2026-05-15T08:00:00Z", message=f"qmsg{i}"
        )
        for i in range(24)
    ]
    ports = [free_port(), free_port()]
    # A worker that does not answer fails the test within seconds, naming the URL.
    timeout = aiohttp.ClientTimeout(total=20)
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession(timeout=timeout) as s:
        for e in events:
            assert await p.post_nexus(s, e) == 200
        with contextlib.ExitStack() as stack:
            for port in ports:
                stack.enter_context(p.worker(web_port=port))
            # Both workers must have joined and split the partitions between them.
            assert (
                await eventually(
                    lambda: _members(kafka_bootstrap, p.group()), lambda n: n == 2, timeout=120
                )
                == 2
            )
            await eventually(lambda: p.table("addresses"), lambda t: len(t) == 24, timeout=120)
            addresses = await _quiet(lambda: p.table("addresses"))
            messages = await _quiet(lambda: p.table("messages"))
            for port in ports:
                base = f"http://127.0.0.1:{port}"
                for address, state in addresses.items():
                    assert await _get(s, f"{base}/addresses/{address}/") == (200, state)
                for message_id, state in messages.items():
                    assert await _get(s, f"{base}/messages/{message_id}/") == (200, state)
                status, _ = await _get(s, f"{base}/addresses/nobody@example.com/")
                assert status == 404
                # Mixed case is normalised before routing.
                assert (await _get(s, f"{base}/addresses/Q1@EXAMPLE.com/"))[1] == addresses[
                    "q1@example.com"
                ]
                listed = await _all_suppressions(s, base)
                expected = sorted(
                    a for a, st in addresses.items() if any(st["suppression"].values())
                )
                assert [r["address"] for r in listed] == expected


async def _members(bootstrap: str, group: str) -> int:
    """Members of the workers' consumer group (what Kafka itself says)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_consumer_groups([group])
        group_info = description.groups[
            0
        ]  # (error, group, state, protocol_type, protocol, members)
        return len(group_info[5]) if group_info[2] == "Stable" else 0
    finally:
        await admin.close()


async def _all_suppressions(s: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, page = await _get(s, f"{base}/suppressions/?limit=5&after={after}")
        assert status == 200
        rows += page["items"]
        if page["next"] is None:
            return rows
        after = page["next"]
    raise AssertionError("pagination did not end")
