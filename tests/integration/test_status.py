"""``mailpulse status --json`` on a running pipeline: a burst shows as lag, the lag goes to
zero once a worker runs, and the DLQ, the commands and the members are reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.integration.helpers import eventually
from tests.integration.pipeline import CliResult, Pipeline, nexus_event
from tests.integration.stack import free_port, running_ingest

BURST = 120
AT = "2026-05-14T10:00:00Z"


def _parsed(result: CliResult) -> dict[str, Any]:
    assert result.out, f"status printed nothing (exit {result.code}): {result.err[-2000:]}"
    status: dict[str, Any] = orjson.loads(result.out)
    return status


async def _metrics(port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        return await resp.text()


def _live(status: dict[str, Any]) -> dict[str, Any]:
    live: list[dict[str, Any]] = [g for g in status["generations"] if g["live"]]
    assert len(live) == 1, status
    return live[0]


async def test_status_shows_the_lag_of_a_burst_going_to_zero(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)

    async def status(*extra: str) -> tuple[int, dict[str, Any]]:
        result = await p.mailpulse("status", "--json", "--interval", "0.5", *extra)
        return result.code, _parsed(result)

    events = [nexus_event("delivered", f"s{n}@example.com", n=n, at=AT) for n in range(BURST)]
    events.append(nexus_event("bounced.hard", "gone@example.com", n=BURST, at=AT))
    events.append(nexus_event("no.such.type", "odd@example.com", n=BURST + 1, at=AT))
    async with running_ingest(p.ingest_settings()), aiohttp.ClientSession() as s:
        for event in events:
            assert await p.post_nexus(s, event) == 200

    # No worker has run yet: the burst is all lag, and nothing is live.
    code, before = await status()
    assert code == 1, before
    assert [x["rule"] for x in before["problems"]] == ["no_live_generation"], before
    assert before["broker"]["reachable"] is True
    [g1] = before["generations"]
    assert g1["lag"][p.topic("webhooks.raw")] == len(events), g1
    assert g1["members"] == []

    port = free_port()
    with p.worker(web_port=port, env={"MAILPULSE_PROCESSORS__LAG_INTERVAL_S": "2"}):

        async def probe() -> tuple[int, dict[str, Any]]:
            p.check_workers()
            return await status("--dlq-window", "0")

        def caught_up(answer: tuple[int, dict[str, Any]]) -> bool:
            _, st = answer
            live = [g for g in st["generations"] if g["live"]]
            return bool(live) and live[0]["lag_total"] == 0 and live[0]["dlq_records"] == 1

        code, after = await eventually(
            probe, caught_up, timeout=90, what="the live generation's lag at zero"
        )
        assert code == 0, after
        assert after["healthy"] is True
        assert after["problems"] == []
        live = _live(after)
        assert live["generation"] == "g1"
        assert live["group"] == p.group()
        assert set(live["lag"]) == {
            p.topic(t) for t in ("webhooks.raw", "email.events", "message.events")
        }
        assert len(live["members"]) == 1, live
        assert live["commands_published"] == 1  # the hard bounce
        assert live["dlq_newest"]["reason"] == "unknown_event_type"
        assert live["dlq_newest"]["stage"] == "normalise"

        # The DLQ record is minutes-fresh: with the default window it is a problem.
        screen = await p.mailpulse("status", "--interval", "0.5")
        assert screen.code == 1, screen
        assert f"* g1 (live): group {p.group()}" in screen.out, screen.out
        assert "UNHEALTHY dlq_growing (g1)" in screen.out
        assert "UNHEALTHY" not in screen.out.replace("UNHEALTHY dlq_growing", "")

        # The worker exports the same lag for Prometheus (refreshed every 2 s here).
        raw_lag = f'mailpulse_consumer_lag{{group="{p.group()}",topic="{p.topic("webhooks.raw")}"}}'
        text = await eventually(
            lambda: _metrics(port), lambda t: f"{raw_lag} 0.0" in t, timeout=30, what=raw_lag
        )
        assert 'mailpulse_suppression_commands_total{action="suppress"} 1.0' in text
