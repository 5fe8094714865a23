"""Suppression policy: which outcomes suppress which scope, thresholds, retention.

Defaults (DESIGN.md §4): hard bounce and complaint suppress all mail; unsubscribe
suppresses marketing; 3 soft bounces later than the last delivery suppress all mail
(reason ``soft_bounce_threshold``); ``dropped`` suppresses nothing unless added to
``suppress_on``. Every value is configurable under ``[processors.policy]``.

Changing the policy changes what the stored state means: ship it as a rebuild
(DESIGN.md §3), not as a restart over the old tables.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.common import EventType, SuppressionScope

# The event types that may suppress a scope, and the reason their suppression carries.
REASONS: dict[EventType, str] = {
    "bounced.hard": "hard_bounce",
    "complained": "complaint",
    "unsubscribed": "unsubscribe",
    "dropped": "dropped",
}
SOFT_BOUNCE_REASON = "soft_bounce_threshold"

DEFAULT_SUPPRESS_ON: dict[EventType, SuppressionScope] = {
    "bounced.hard": "all",
    "complained": "all",
    "unsubscribed": "marketing",
}


class Policy(BaseModel):
    """Every threshold and mapping the pure transitions use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Event type -> the scope it suppresses for good (until a later manual unsuppress).
    # A type absent from the mapping suppresses nothing.
    suppress_on: dict[EventType, SuppressionScope] = Field(
        default_factory=lambda: dict(DEFAULT_SUPPRESS_ON)
    )
    soft_bounce_threshold: int = Field(default=3, ge=1)
    soft_bounce_scope: SuppressionScope = "all"
    # Provider event ids are remembered this long in *event* time (never wall clock).
    dedupe_retention: timedelta = Field(default=timedelta(hours=48))
    message_history_limit: int = Field(default=50, ge=1)
    # A message keeps this many of its recipients (the first in address order) and a
    # flag saying there were more: one message id can go to a whole list.
    message_recipients_limit: int = Field(default=20, ge=1)
    # Per scope, how many sticky causes an address keeps (the newest; see transitions).
    max_causes: int = Field(default=32, ge=1)

    @field_validator("suppress_on")
    @classmethod
    def _known_reasons(
        cls, value: dict[EventType, SuppressionScope]
    ) -> dict[EventType, SuppressionScope]:
        unknown = set(value) - set(REASONS)
        if unknown:
            raise ValueError(
                f"these event types cannot suppress: {sorted(unknown)} "
                f"(allowed: {sorted(REASONS)}; soft bounces have their own threshold)"
            )
        return value

    @field_validator("dedupe_retention")
    @classmethod
    def _at_least_an_hour(cls, value: timedelta) -> timedelta:
        if value < timedelta(hours=1):
            raise ValueError("dedupe_retention must be at least 1 hour")
        return value

    @property
    def soft_bounce_marks(self) -> int:
        """How many soft bounces after the last delivery an address remembers."""
        return max(4 * self.soft_bounce_threshold, 16)
