"""Processors end to end on the real broker: HTTP in, tables and topics out."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fixtures.signing import sign
from tests.integration.helpers import eventually
from tests.integration.pipeline import GENERIC_SECRET, Pipeline, nexus_event
from tests.integration.stack import running_ingest


@pytest.fixture
async def pipeline(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    p = Pipeline(kafka_bootstrap, tmp_path)
    async with running_ingest(p.ingest_settings()):
        yield p


def _suppressed_scopes(state: dict[str, Any]) -> dict[str, str]:
    return {scope: s["reason"] for scope, s in state["suppression"].items() if s}


async def test_hard_bounce_complaint_unsubscribe_publish_commands(pipeline: Pipeline) -> None:
    at = "2026-05-13T10:00:00Z"
    with pipeline.worker():
        # Let the worker join and settle before timing the 5 s promise.
        async with aiohttp.ClientSession() as s:
            assert (
                await pipeline.post_nexus(
                    s, nexus_event("delivered", "warmup@example.com", n=0, at=at)
                )
                == 200
            )
            await eventually(
                lambda: pipeline.table("addresses"),
                lambda t: "warmup@example.com" in t,
                timeout=120,
            )
            cases = [
                ("bounced.hard", "hard@example.com", "all", "hard_bounce"),
                ("complained", "spam@example.com", "all", "complaint"),
                ("unsubscribed", "unsub@example.com", "marketing", "unsubscribe"),
            ]
            for n, (kind, email, scope, reason) in enumerate(cases, start=1):
                assert await pipeline.post_nexus(s, nexus_event(kind, email, n=n, at=at)) == 200
                commands = await eventually(
                    pipeline.commands,
                    lambda cs, email=email: any(c["address"] == email for c in cs),  # type: ignore[misc]
                    timeout=60,
                    what=f"a command for {email}",
                )
                mine = [c for c in commands if c["address"] == email]
                assert len(mine) == 1, (kind, mine)
                change = mine[0]["change"]
                assert (change["action"], change["scope"], change["reason"]) == (
                    "suppress",
                    scope,
                    reason,
                )
    table = await pipeline.table("addresses")
    assert _suppressed_scopes(table["unsub@example.com"]) == {"marketing": "unsubscribe"}
    assert _suppressed_scopes(table["hard@example.com"]) == {"all": "hard_bounce"}


def _soft_then_delivery_events(email: str, base: int) -> list[dict[str, Any]]:
    # In event time: soft, soft, delivered, soft, soft -> only 2 after the last delivery.
    times = [f"2026-05-13T10:0{i}:00Z" for i in range(5)]
    kinds = ["bounced.soft", "bounced.soft", "delivered", "bounced.soft", "bounced.soft"]
    return [
        nexus_event(k, email, n=base + i, at=t)
        for i, (k, t) in enumerate(zip(kinds, times, strict=True))
    ]


async def test_soft_bounce_threshold_and_order_insensitivity(pipeline: Pipeline) -> None:
    three = [
        nexus_event("bounced.soft", "soft3@example.com", n=100 + i, at=f"2026-05-13T11:0{i}:00Z")
        for i in range(3)
    ]
    in_order = _soft_then_delivery_events("ordered@example.com", 200)
    shuffled = _soft_then_delivery_events("shuffled@example.com", 300)
    random.Random(7).shuffle(shuffled)
    # The shuffled address must see the delivery last in arrival order at least once.
    shuffled.sort(key=lambda e: e["type"] == "delivered")
    with pipeline.worker():
        async with aiohttp.ClientSession() as s:
            for event in [*three, *in_order, *shuffled]:
                assert await pipeline.post_nexus(s, event) == 200
        table = await eventually(
            lambda: pipeline.table("addresses"),
            lambda t: all(
                t.get(a, {}).get("counts", {}).get("bounced.soft", 0) == n
                for a, n in [
                    ("soft3@example.com", 3),
                    ("ordered@example.com", 4),
                    ("shuffled@example.com", 4),
                ]
            ),
            timeout=120,
        )
    assert _suppressed_scopes(table["soft3@example.com"]) == {"all": "soft_bounce_threshold"}
    assert _suppressed_scopes(table["ordered@example.com"]) == {}
    assert _suppressed_scopes(table["shuffled@example.com"]) == {}
    ordered, shuffled_state = table["ordered@example.com"], table["shuffled@example.com"]
    for field in ("counts", "suppression", "last_delivered_at"):
        assert ordered[field] == shuffled_state[field], field
    commands = await pipeline.commands()
    assert [c["change"]["reason"] for c in commands if c["address"] == "soft3@example.com"] == [
        "soft_bounce_threshold"
    ]


async def test_retries_batches_and_dlq(pipeline: Pipeline, tmp_path: Path) -> None:
    at = "2026-05-13T12:00:00Z"
    retried = nexus_event("opened", "retry@example.com", n=500, at=at)
    generic_garbage = b'{"type": "email.delivered", "recipient": 42'  # signed, not JSON
    generic_ok = orjson.dumps(
        {
            "type": "email.delivered",
            "email_id": "msg_g1",
            "recipient": "after-dlq@example.com",
            "timestamp": at,
        }
    )
    with pipeline.worker():
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                assert await pipeline.post_nexus(s, retried) == 200
            for body in (generic_garbage, generic_ok):
                body, headers = sign("generic", body, GENERIC_SECRET, now=time.time())
                url = f"http://127.0.0.1:{pipeline.ingest_port}/api/webhooks"
                async with s.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"received": True}
        table = await eventually(
            lambda: pipeline.table("addresses"),
            lambda t: "after-dlq@example.com" in t and "retry@example.com" in t,
            timeout=120,
        )
        dlq = await eventually(pipeline.dlq, lambda d: len(d) >= 1, timeout=30)
    assert table["retry@example.com"]["counts"] == {"opened": 1}
    assert table["after-dlq@example.com"]["counts"] == {"delivered": 1}
    assert len(dlq) == 1
    assert dlq[0]["reason"] == "invalid_json"
    import base64

    assert base64.b64decode(dlq[0]["raw"]["body_b64"]) == generic_garbage
    # The worker's own logs stay JSON once Faust has started (it re-configures logging).
    logged = [
        orjson.loads(line)
        for log in pipeline.workdir.glob("worker-g1-*.log")
        for line in log.read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(
        entry.get("event") == "sent_to_dlq" and entry.get("reason") == "invalid_json"
        for entry in logged
    ), logged
    # ... at the configured level (warning here): no debug or info records.
    assert {entry.get("level") for entry in logged} <= {"warning", "error", "critical"}, logged


async def test_sendgrid_batch_updates_each_address(kafka_bootstrap: str, tmp_path: Path) -> None:
    from pydantic import SecretStr

    from ingest.settings import SourceSettings
    from tests.fixtures.signing import sendgrid_keys

    keys = sendgrid_keys()
    p = Pipeline(
        kafka_bootstrap,
        tmp_path,
        extra_sources={
            "sendgrid": SourceSettings(kind="sendgrid", secrets=(SecretStr(keys.public_key),))
        },
    )
    batch = orjson.dumps(
        [
            {
                "email": f"sg{i}@example.com",
                "timestamp": 1778666400 + i,
                "event": kind,
                "sg_event_id": f"sg-evt-{i}",
                "sg_message_id": f"sgmsg{i}.filter0001",
            }
            for i, kind in enumerate(["delivered", "open", "spamreport"])
        ]
    )
    async with running_ingest(p.ingest_settings()):
        with p.worker():
            body, headers = sign("sendgrid", batch, keys.private_key, now=time.time())
            async with (
                aiohttp.ClientSession() as s,
                s.post(
                    f"http://127.0.0.1:{p.ingest_port}/webhooks/sendgrid",
                    data=body,
                    headers=headers,
                ) as resp,
            ):
                assert resp.status == 200
            table = await eventually(
                lambda: p.table("addresses"), lambda t: len(t) == 3, timeout=120
            )
    assert {a: s["counts"] for a, s in table.items()} == {
        "sg0@example.com": {"delivered": 1},
        "sg1@example.com": {"opened": 1},
        "sg2@example.com": {"complained": 1},
    }
    assert _suppressed_scopes(table["sg2@example.com"]) == {"all": "complaint"}
