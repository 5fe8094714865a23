"""A webhook the mapper could not map goes to the DLQ; after the fix ``mailpulse redrive``
sends it through the normaliser again, and it applies exactly once however often it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from schemas.raw import H_REDRIVEN_FROM
from tests.integration.helpers import eventually, hop_events, produce, read_all, wait_committed
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import running_ingest

OLD_MAPPER = "tests.integration.old_mapper_worker"
AT = "2026-05-14T10:00:00Z"
LATER = "2026-05-14T10:05:00Z"


async def _raw(p: Pipeline) -> list[Any]:
    return await read_all(p.bootstrap, p.topic("webhooks.raw"))


async def _all_consumed(p: Pipeline) -> None:
    """Wait until the group has committed the whole raw topic (every record handled)."""
    total = len(await _raw(p))
    assert await wait_committed(p.bootstrap, p.group(), p.topic("webhooks.raw"), total) == total


async def test_redrive_after_mapper_fix_applies_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    complaint = nexus_event("complained", "dlq@example.com", n=2, at=LATER)
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        for event in [
            nexus_event("delivered", "dlq@example.com", n=1, at=AT),
            complaint,
            nexus_event("delivered", "ok@example.com", n=3, at=AT),
        ]:
            assert await p.post_nexus(s, event) == 200

    # The mapper before the fix: the complaint cannot be mapped and goes to the DLQ.
    with p.worker(module=OLD_MAPPER):
        dlq = await eventually(p.dlq, lambda d: len(d) >= 1, timeout=120)
        await _all_consumed(p)
    assert [(d["reason"], d["stage"]) for d in dlq] == [("unknown_event_type", "normalise")]
    table = await p.table("addresses")
    assert table["dlq@example.com"]["counts"] == {"delivered": 1}
    raw_before = len(await _raw(p))

    with p.worker():  # the fixed mapper
        dry = await p.mailpulse("redrive")
        assert dry.code == 0, dry
        assert "1 to re-drive" in dry.out, dry.out
        assert "dry run" in dry.out
        other = await p.mailpulse("redrive", "--reason", "invalid_json", "--execute")
        assert other.code == 0, other
        assert "0 selected" in other.out, other.out
        window = ("--since", "2000-01-01T00:00:00Z", "--until", "2001-01-01T00:00:00Z")
        assert "0 selected" in (await p.mailpulse("redrive", *window)).out
        assert len(await _raw(p)) == raw_before  # nothing appended yet
        # The fix alone changes nothing: the complaint is only in the DLQ now.
        assert (await p.table("addresses"))["dlq@example.com"]["counts"] == {"delivered": 1}

        done = await p.mailpulse("redrive", "--reason", "unknown_event_type", "--execute")
        assert done.code == 0, done
        assert "re-drove 1 record(s)" in done.out, done.out
        table = await eventually(
            lambda: p.table("addresses"),
            lambda t: "complained" in t["dlq@example.com"]["counts"],
            timeout=120,
        )
        again = await p.mailpulse("redrive", "--execute")
        assert again.code == 0, again
        assert "1 already re-driven" in again.out, again.out
        assert "re-drove 0 record(s)" in again.out, again.out

        # Two racing runs would both append: the provider event id still counts it once.
        redriven = [r for r in await _raw(p) if any(k == H_REDRIVEN_FROM for k, _ in r.headers)]
        assert len(redriven) == 1
        copy = redriven[0]
        await produce(kafka_bootstrap, copy.topic, [(copy.key, copy.value)], copy.headers)
        await _all_consumed(p)
        table = await p.table("addresses")

    state = table["dlq@example.com"]
    assert state["counts"] == {"delivered": 1, "complained": 1}
    assert state["suppression"]["all"]["reason"] == "complaint"
    assert table["ok@example.com"]["counts"] == {"delivered": 1}
    mine = [c for c in await p.commands() if c["address"] == "dlq@example.com"]
    assert [(c["change"]["action"], c["change"]["reason"]) for c in mine] == [
        ("suppress", "complaint")
    ]
    # The re-driven record: the original's key, body and headers, plus where it came from.
    position = (dlq[0]["raw"]["partition"], dlq[0]["raw"]["offset"])
    [original] = [r for r in await _raw(p) if (r.partition, r.offset) == position]
    assert orjson.loads(original.value) == complaint
    assert (copy.key, copy.value) == (original.key, original.value)
    assert [*original.headers, (H_REDRIVEN_FROM, f"{p.topic('webhooks.dlq')}:0:0".encode())] == [
        *copy.headers
    ]
    events = hop_events(await read_all(p.bootstrap, p.topic("email.events")))
    complaints = [e for e in events if e["type"] == "complained"]
    assert complaints
    assert {e["processing_status"] for e in complaints} == {"redriven"}
    assert len(await p.dlq()) == 1  # nothing failed again
