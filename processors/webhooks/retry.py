"""When a delivery is attempted again, and what an attempt's answer means. Pure.

Retried: timeouts (and 408), connection errors, 429 and 5xx. Attempt ``n + 1`` waits a
uniform random time in ``[0, min(cap, base * 2**(n - 1))]`` ("full jitter": endpoints
that fail together do not retry together), and at least the ``Retry-After`` of a 429
or 503, up to ``retry_after_max_s``. A delivery whose next attempt would start more than
``max_age_s`` after its first attempt is failed instead. 2xx delivered; 410 failed and
deactivates the endpoint; any other answer (3xx: redirects are not followed, 4xx) fails
at once: sending the same bytes again would get the same answer.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Verdict = Literal["delivered", "retry", "gone", "failed"]


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one POST came to: an HTTP status, or an error class when there was none."""

    status_code: int | None
    error: str | None = None  # timeout, connection_error, address_not_allowed, ...
    retry_after_s: float | None = None
    duration_ms: int = 0
    retriable_error: bool = True  # an error without a status: may a retry help?


def verdict(result: AttemptResult) -> Verdict:
    code = result.status_code
    if code is None:
        return "retry" if result.retriable_error else "failed"
    if 200 <= code < 300:
        return "delivered"
    if code == 410:
        return "gone"
    if code in (408, 429) or code >= 500:
        return "retry"
    return "failed"


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    base_s: float
    cap_s: float
    max_age_s: float
    retry_after_max_s: float

    def ceiling(self, attempts: int) -> float:
        """The longest wait after the ``attempts``-th attempt (1-based)."""
        exponent = min(max(attempts - 1, 0), 62)  # 2**62 s is past any cap
        return min(self.cap_s, self.base_s * 2.0**exponent)

    def delay(self, attempts: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th attempt failed."""
        wait = rng.uniform(0.0, self.ceiling(attempts))
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.retry_after_max_s))
        return wait

    def next_attempt(
        self,
        window_start: datetime,
        attempts: int,
        now: datetime,
        rng: random.Random,
        retry_after_s: float | None = None,
    ) -> datetime | None:
        """When to try again, or None: the maximum age would be passed."""
        at = now + timedelta(seconds=self.delay(attempts, rng, retry_after_s))
        if (at - window_start).total_seconds() > self.max_age_s:
            return None
        return at


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now``: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
