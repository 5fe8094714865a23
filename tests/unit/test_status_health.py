"""The rules by which ``mailpulse status`` calls the pipeline unhealthy, and its screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from processors.ops.health import (
    BrokerStatus,
    DlqNewest,
    GenerationStatus,
    Status,
    Thresholds,
    judge,
    render,
)
from processors.ops.status import gather
from processors.settings import ProcessorSettings
from tests.integration.stack import free_port

NOW = datetime(2026, 5, 14, 12, 0, tzinfo=UTC)
LIMITS = Thresholds(max_lag=100, dlq_window=timedelta(minutes=5))


def generation(**changes: object) -> GenerationStatus:
    healthy = GenerationStatus(
        generation="g1",
        live=True,
        group="app-g1",
        state="Stable",
        members=("faust-0.15.3@/127.0.0.1",),
        lag={"webhooks.raw": 0, "email.events": 0, "message.events": 0},
        lag_before=0,
        events_per_s=12.5,
        dlq_topic="webhooks.dlq",
        dlq_records=0,
        dlq_new=0,
        dlq_newest=None,
        commands_topic="suppression.commands",
        commands_published=4,
        commands_per_s=0.0,
    )
    return replace(healthy, **changes)  # type: ignore[arg-type]


def status(*generations: GenerationStatus, reachable: bool = True) -> Status:
    broker = BrokerStatus("127.0.0.1:9092", reachable, 1 if reachable else 0, None)
    return Status(broker, "webhooks.raw", 10, 1.0, 2.0, generations)


def rules(s: Status) -> list[str]:
    return [p.rule for p in judge(s, NOW, LIMITS)]


def test_a_live_generation_that_keeps_up_is_healthy() -> None:
    shadow = generation(generation="g2", live=False, members=(), state="Empty")
    assert rules(status(generation(), shadow)) == []


def test_an_unreachable_broker_is_the_only_problem_reported() -> None:
    assert rules(status(reachable=False)) == ["broker_unreachable"]


def test_no_active_generation() -> None:
    assert rules(status(generation(live=False))) == ["no_live_generation"]


def test_a_live_generation_without_workers() -> None:
    found = judge(status(generation(members=(), state="Empty")), NOW, LIMITS)
    assert [(p.rule, p.generation) for p in found] == [("no_members", "g1")]
    assert "app-g1" in found[0].detail


@pytest.mark.parametrize(
    ("before", "raw_lag", "growing"),
    [
        (0, 50, False),  # grew, but under max_lag: commits move in steps
        (150, 101, False),  # over max_lag but shrinking: catching up
        (101, 101, False),  # steady
        (100, 101, True),
        (0, 5000, True),
    ],
)
def test_lag_growing_needs_growth_above_the_limit(before: int, raw_lag: int, growing: bool) -> None:
    lag = {"webhooks.raw": raw_lag, "email.events": 0, "message.events": None}
    gen = generation(lag=lag, lag_before=before)
    assert rules(status(gen)) == (["lag_growing"] if growing else [])


def test_a_shadow_generation_may_lag_and_fill_its_dlq() -> None:
    rebuilding = generation(
        generation="g2", live=False, lag={"webhooks.raw": 9000}, lag_before=10, dlq_new=3
    )
    assert rules(status(generation(), rebuilding)) == []


@pytest.mark.parametrize(
    ("new", "age", "growing"),
    [
        (0, None, False),
        (0, timedelta(minutes=6), False),  # an old DLQ record, nothing new
        (0, timedelta(minutes=4), True),  # appended within the window
        (2, timedelta(minutes=30), True),  # appended between the samples
    ],
)
def test_dlq_growing(new: int, age: timedelta | None, growing: bool) -> None:
    newest = None if age is None else DlqNewest("unknown_event_type", "normalise", NOW - age)
    gen = generation(dlq_new=new, dlq_records=5 if newest else 0, dlq_newest=newest)
    found = judge(status(gen), NOW, LIMITS)
    assert [p.rule for p in found] == (["dlq_growing"] if growing else [])
    if growing:
        assert "unknown_event_type" in found[0].detail


def test_several_rules_at_once_in_the_order_to_look_at_them() -> None:
    newest = DlqNewest("invalid_json", "normalise", NOW)
    gen = generation(
        members=(), lag={"webhooks.raw": 500}, lag_before=200, dlq_new=1, dlq_newest=newest
    )
    assert rules(status(gen)) == ["no_members", "lag_growing", "dlq_growing"]


def test_screen_and_json_name_the_live_generation_and_the_broken_rule() -> None:
    newest = DlqNewest("invalid_json", "normalise", NOW)
    s = status(generation(members=(), dlq_records=2, dlq_newest=newest))
    s = replace(s, problems=judge(s, NOW, LIMITS))
    screen = render(s)
    assert "* g1 (live): group app-g1 Stable, 0 member(s): none" in screen
    assert "DLQ webhooks.dlq: 2 record(s), newest invalid_json (normalise)" in screen
    assert "UNHEALTHY no_members (g1)" in screen
    data = orjson.loads(orjson.dumps(s.as_json(), default=str))
    assert data["healthy"] is False
    assert data["generations"][0]["lag_total"] == 0
    assert [p["rule"] for p in data["problems"]] == ["no_members", "dlq_growing"]


async def test_a_broker_that_does_not_answer_is_reported_not_raised() -> None:
    settings = ProcessorSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    found = await gather(settings, interval_s=0.1)
    assert found.broker.reachable is False
    assert "bootstrap" in (found.broker.error or "").lower()
    assert rules(found) == ["broker_unreachable"]
