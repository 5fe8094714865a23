"""Admin actions on the real broker: through webhooks.raw, applied by the address agent,
published as commands, and reproduced by a rebuild from the earliest raw offset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from processors import openapi as processors_openapi
from tests.integration.helpers import eventually, read_all, wait_status
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import free_port, running_ingest

# config/dev.toml, which the test workers read (MAILPULSE_CONFIG).
DEV_TOKEN = "dev-fake-admin-token"
BOUNCED = "bounced@example.com"
FRESH = "fresh@example.com"


async def _post(
    s: aiohttp.ClientSession, url: str, body: dict[str, Any], token: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with s.post(url, data=orjson.dumps(body), headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read())


async def test_manual_actions_apply_publish_and_survive_a_rebuild(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    raw_topic = p.topic("webhooks.raw")
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        bounce = nexus_event("bounced.hard", BOUNCED, n=1, at="2026-05-13T10:00:00Z")
        assert await p.post_nexus(s, bounce) == 200
        delivered = nexus_event("delivered", FRESH, n=2, at="2026-05-13T10:01:00Z")
        assert await p.post_nexus(s, delivered) == 200

        with p.worker(web_port=port):
            commands = await eventually(p.commands, lambda c: len(c) == 1, timeout=120)
            assert [(c["address"], c["change"]["action"]) for c in commands] == [
                (BOUNCED, "suppress")
            ]
            await wait_status(s, f"{base}/addresses/{BOUNCED}/", {200, 404}, timeout=120)
            async with s.get(f"{base}/openapi.json") as resp:
                assert resp.status == 200
                assert await resp.read() == processors_openapi.FILE.read_bytes()
            raw_before = await read_all(kafka_bootstrap, raw_topic)

            # Without the token (or with a wrong one): 401, and nothing reaches Kafka.
            unsuppress = {"address": BOUNCED, "scope": "all", "reason": "mailbox fixed"}
            for token in (None, "wrong-token"):
                status, answer = await _post(s, f"{base}/admin/unsuppressions/", unsuppress, token)
                assert status == 401
                assert answer["error"] == "unauthorized"
            assert len(await read_all(kafka_bootstrap, raw_topic)) == len(raw_before)

            # With it: 202 once durable, then an unsuppress command and the table agrees.
            status, answer = await _post(s, f"{base}/admin/unsuppressions/", unsuppress, DEV_TOKEN)
            assert status == 202, answer
            lift_id = answer["action_id"]
            raw_after = await read_all(kafka_bootstrap, raw_topic)
            seen = {(r.partition, r.offset) for r in raw_before}
            [admin_record] = [r for r in raw_after if (r.partition, r.offset) not in seen]
            assert admin_record.key == lift_id.encode()
            assert (answer["raw"]["partition"], answer["raw"]["offset"]) == (
                admin_record.partition,
                admin_record.offset,
            )
            assert dict(admin_record.headers)["mailpulse.provider"] == b"admin"

            commands = await eventually(p.commands, lambda c: len(c) == 2, timeout=60)
            # One address's commands share a partition, so they are in publishing order.
            [_, lift] = [c for c in commands if c["address"] == BOUNCED]
            assert lift["change"] == {
                "action": "unsuppress",
                "scope": "all",
                "reason": "manual:mailbox fixed",
                "cause": lift_id,
            }
            assert lift["suppression"] == {"all": None, "marketing": None}
            table = await eventually(
                lambda: p.table("addresses"),
                lambda t: t[BOUNCED]["suppression"]["all"] is None,
                timeout=60,
            )
            assert table[BOUNCED]["counts"] == {"bounced.hard": 1}
            async with s.get(f"{base}/addresses/{BOUNCED}/") as resp:
                assert (await resp.json())["suppression"] == {"all": None, "marketing": None}

            # A manual suppress of an address with no suppression of its own.
            status, answer = await _post(
                s,
                f"{base}/admin/suppressions/",
                {"address": "Fresh@Example.com", "scope": "marketing", "reason": "asked"},
                DEV_TOKEN,
            )
            assert status == 202, answer
            assert answer["address"] == FRESH
            commands = await eventually(p.commands, lambda c: len(c) == 3, timeout=60)
            [manual_suppress] = [c for c in commands if c["address"] == FRESH]
            assert manual_suppress["change"] == {
                "action": "suppress",
                "scope": "marketing",
                "reason": "manual:asked",
                "cause": answer["action_id"],
            }
            # The manual action travelled on email.events as such (header), keyed by address.
            events = await read_all(kafka_bootstrap, p.topic("email.events"))
            manual = [r for r in events if b"manual_action" in dict(r.headers).values()]
            assert sorted(r.key for r in manual) == [BOUNCED.encode(), FRESH.encode()]

            live, _ = await p.settled()
            assert live[FRESH]["suppression"]["marketing"]["reason"] == "manual:asked"
            assert live[BOUNCED]["suppression"]["all"] is None
            assert len(await p.commands()) == 3  # nothing else happened meanwhile

    # Rebuild: a new generation from the earliest raw offset (a shadow one: g1 is active)
    # gives the same records.
    with p.worker(generation="g2"):
        rebuilt = await eventually(
            lambda: p.table("addresses", generation="g2"), lambda t: t == live, timeout=180
        )
    assert rebuilt == live
