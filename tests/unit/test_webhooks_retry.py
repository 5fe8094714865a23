"""The retry schedule and what an attempt's answer means (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.webhooks.retry import AttemptResult, RetrySchedule, parse_retry_after, verdict

T0 = datetime(2026, 5, 20, 8, 0, tzinfo=UTC)
DEFAULT = RetrySchedule(base_s=5, cap_s=3600, max_age_s=24 * 3600, retry_after_max_s=3600)


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    assert [DEFAULT.ceiling(n) for n in range(1, 8)] == [5, 10, 20, 40, 80, 160, 320]
    assert DEFAULT.ceiling(11) == 3600  # 5 * 2**10 = 5120, capped
    assert DEFAULT.ceiling(10_000) == 3600


@given(attempts=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_full_jitter_waits_between_zero_and_the_ceiling(attempts: int, seed: int) -> None:
    wait = DEFAULT.delay(attempts, random.Random(seed))
    assert 0 <= wait <= DEFAULT.ceiling(attempts)


def test_jitter_spreads_endpoints_that_fail_together() -> None:
    waits = {round(DEFAULT.delay(6, random.Random(seed)), 3) for seed in range(50)}
    assert len(waits) > 40


@given(retry_after=st.floats(0, 10_000), seed=st.integers(0, 2**32))
def test_retry_after_is_honoured_up_to_its_maximum(retry_after: float, seed: int) -> None:
    wait = DEFAULT.delay(1, random.Random(seed), retry_after)
    assert wait >= min(retry_after, DEFAULT.retry_after_max_s)
    assert wait <= max(DEFAULT.ceiling(1), DEFAULT.retry_after_max_s)


def test_no_attempt_is_scheduled_past_the_maximum_age() -> None:
    schedule = RetrySchedule(base_s=10, cap_s=10, max_age_s=60, retry_after_max_s=30)
    rng = random.Random(1)
    assert schedule.next_attempt(T0, 1, T0 + timedelta(seconds=30), rng) is not None
    assert schedule.next_attempt(T0, 1, T0 + timedelta(seconds=61), rng) is None
    # A Retry-After that would land past the age ends the delivery too.
    assert schedule.next_attempt(T0, 1, T0 + timedelta(seconds=40), rng, 25) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (410, "gone"),
        (429, "retry"),
        (408, "retry"),
        (500, "retry"),
        (503, "retry"),
        (599, "retry"),
        (301, "failed"),  # redirects are not followed
        (400, "failed"),
        (401, "failed"),
        (404, "failed"),
        (413, "failed"),
    ],
)
def test_verdict_of_an_answer(status: int, expected: str) -> None:
    assert verdict(AttemptResult(status)) == expected


def test_errors_without_an_answer_retry_unless_a_retry_cannot_help() -> None:
    assert verdict(AttemptResult(None, "timeout")) == "retry"
    assert verdict(AttemptResult(None, "connection_error")) == "retry"
    assert verdict(AttemptResult(None, "address_not_allowed", retriable_error=False)) == "failed"


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("120", T0) == 120
    assert parse_retry_after(" 7 ", T0) == 7
    assert parse_retry_after("Wed, 20 May 2026 08:01:30 GMT", T0) == 90
    assert parse_retry_after("Wed, 20 May 2026 07:00:00 GMT", T0) == 0  # in the past
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after("", T0) is None
    assert parse_retry_after(None, T0) is None
