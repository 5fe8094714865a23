"""Outbound webhooks end to end on the real broker, with real receivers on 127.0.0.1:
a Node receiver checking signatures as seed 003 does, flaky, gone, dead and healthy
aiohttp receivers; the delivery log, re-send and replay; refusals of private URLs."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.helpers import eventually
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import free_port, running_ingest
from tests.integration.webhooks import (
    Manage,
    Receiver,
    fast_delivery_env,
    node_received,
    node_receiver,
    serving,
    wait_ready,
)

AT = "2026-05-20T08:00:00Z"
# NexusProMail type -> the webhook type it is delivered as.
KINDS = {
    "opened": "email.open",
    "clicked": "email.click",
    "bounced.hard": "email.bounce",
    "unsubscribed": "email.unsubscribe",
    "delivered": "email.delivered",
    "complained": "email.complaint",
}


async def test_subscribed_events_are_delivered_once_signed_and_retried(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    port = free_port()
    node_secret = "whsec_node_receiver_secret_0001"
    flaky, gone = Receiver(script=[500, 500, 500]), Receiver(script=[410])
    healthy = Receiver()
    dead_url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        running_ingest(p.ingest_settings()),
        aiohttp.ClientSession(timeout=timeout) as s,
        serving(flaky, gone, healthy),
    ):
        with (
            node_receiver(node_secret, tmp_path / "node.log") as node,
            p.worker(web_port=port, env=fast_delivery_env(MAX_AGE_S="4")),
        ):
            manage = Manage(s, port)
            await wait_ready(manage)
            node_hook = await manage.create(
                f"{node}/hook", "bounce,unsubscribe,suppression.changed", node_secret
            )
            assert "secret" in node_hook and node_hook["secret"] is None
            made = await manage.create(flaky.url, "email.click")
            flaky.secret = made["secret"]
            assert flaky.secret.startswith("whsec_")
            gone_hook = await manage.create(gone.url, "email.open")
            gone.secret = gone_hook["secret"]
            dead = await manage.create(dead_url, "email.delivered")
            live = await manage.create(healthy.url, "email.delivered")
            healthy.secret = live["secret"]

            events = [
                nexus_event(kind, f"w{i}@example.com", n=i, at=AT, message=f"wmsg{i}")
                for i, kind in enumerate([*KINDS, "bounced.hard", "opened", "delivered"])
            ]
            for e in events:
                assert await p.post_nexus(s, e) == 200

            async def node_got() -> list[dict[str, Any]]:
                p.check_workers()
                return await node_received(s, node)

            # 2 hard bounces, 1 unsubscribe, and a suppression command for each of them and
            # for the complaint (the default policy suppresses on all four).
            got = await eventually(node_got, lambda r: len(r) >= 7, timeout=60, what="node")
            assert all(r["verified"] for r in got), got
            types = Counter(r["body"]["type"] for r in got)
            assert types == {"email.bounce": 2, "email.unsubscribe": 1, "suppression.changed": 4}
            assert len({r["id"] for r in got}) == 7

            await eventually(
                lambda: _status(manage, made["id"]), lambda st: st == ["delivered"], timeout=30
            )
            [row] = await manage.deliveries(made["id"])
            assert row["attempts"] == 4
            assert [a["status_code"] for a in row["history"]] == [500, 500, 500, 200]
            assert len(flaky.deliveries) == 4 and all(d.verified for d in flaky.deliveries)
            assert len({d.id for d in flaky.deliveries}) == 1

            assert len(healthy.ids()) == 2
            await eventually(
                lambda: _status(manage, dead["id"]),
                lambda st: st == ["failed", "failed"],
                timeout=30,
            )
            status, after = await manage.call("GET", f"/{gone_hook['id']}")
            assert status == 200 and after["active"] is False
            p.check_workers()
            assert time.time()


async def _status(manage: Manage, webhook_id: int) -> list[str]:
    return sorted(r["status"] for r in await manage.deliveries(webhook_id))
