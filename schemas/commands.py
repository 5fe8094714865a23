"""Suppression commands (value of the compacted ``suppression.commands`` topic, key =
address) and manual admin actions (which travel through Kafka like provider events)."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.common import SuppressionScope
from schemas.events import RawPosition
from schemas.state import ScopeSuppression

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# Kafka record header that says what an ``email.events`` or ``message.events`` value is.
# ``event_batch``: a ``CanonicalEventBatch`` (what the normaliser writes for provider
# events); ``manual_action``: a ``ManualAction`` (email.events only); absent: one
# ``CanonicalEvent`` (written by earlier versions, still read). Like a CloudEvents
# ``ce_type`` header: the canonical event's own shape and schema stay as they were.
VALUE_TYPE_HEADER = "mailpulse.value_type"
MANUAL_ACTION_VALUE_TYPE = "manual_action"
EVENT_BATCH_VALUE_TYPE = "event_batch"  # schemas.events.CanonicalEventBatch


class SuppressionChange(BaseModel):
    """What one command changed: one scope suppressed (or its reason changed) or lifted."""

    model_config = _FROZEN
    action: Literal["suppress", "unsuppress"]
    scope: SuppressionScope
    reason: str
    cause: str = Field(description="Dedupe key of the causing event or id of the manual action.")


class SuppressionCommand(BaseModel):
    """The address's full current suppression state plus what changed.

    Consumers apply the latest command per address (the topic is compacted) and dedupe
    by ``command_id``: a crash can make us publish the same command twice, never lose one.
    """

    model_config = _FROZEN
    schema_version: Literal[1] = 1
    command_id: str = Field(
        description="Deterministic (sha256 hex of address and change): the same change "
        "from the same cause always has the same id, across retries, replays and rebuilds."
    )
    address: str
    suppression: dict[SuppressionScope, ScopeSuppression | None] = Field(
        description="Every scope of the address after the change (null = not suppressed)."
    )
    change: SuppressionChange
    issued_at: AwareDatetime = Field(description="Event time of the cause (not wall clock).")

    @staticmethod
    def make_id(address: str, change: SuppressionChange) -> str:
        """sha256 hex of an unambiguous (JSON) encoding of address and change."""
        material = json.dumps(
            [address, change.action, change.scope, change.reason, change.cause],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(material.encode()).hexdigest()


class ManualActionRequest(BaseModel):
    """An operator's suppress/unsuppress as the admin API appends it to ``webhooks.raw``
    (the record's body; headers say provider ``admin``, kind ``manual_action``).

    It is what was asked, not yet where it sits: the normaliser adds the raw position and
    normalises the address, giving the ``ManualAction`` that travels on ``email.events``.
    """

    model_config = _FROZEN
    schema_version: Literal[1] = 1
    action_id: str = Field(min_length=1, description="'admin:<uuid>'; the dedupe key.")
    action: Literal["suppress", "unsuppress"]
    address: str = Field(description="As the operator wrote it (normalised downstream).")
    scope: SuppressionScope
    reason: str = Field(default="", description="Operator's free text, kept in the reason.")
    actor: str = "admin"
    requested_at: AwareDatetime = Field(description="When the admin API accepted it.")

    def at(self, address: str, raw: RawPosition) -> ManualAction:
        """The action as applied: normalised ``address``, position in ``webhooks.raw``."""
        fields = self.model_dump(exclude={"address", "schema_version"})
        return ManualAction(**fields, address=address, raw=raw)


class ManualAction(BaseModel):
    """An operator's suppress/unsuppress, appended to ``webhooks.raw`` by the admin API and
    applied by the address agent through the same pure path as provider events, so that
    replays and rebuilds reproduce it.

    ``raw`` is the action's position in ``webhooks.raw`` (it shares the replay-dedupe
    positions with provider events); ``requested_at`` plays the role of event time.
    """

    model_config = _FROZEN
    schema_version: Literal[1] = 1
    action_id: str = Field(description="Unique id (e.g. 'admin:<uuid>'); the dedupe key.")
    action: Literal["suppress", "unsuppress"]
    address: str = Field(description="Normalised address.")
    scope: SuppressionScope
    reason: str = Field(default="", description="Operator's free text, kept in the reason.")
    actor: str = "admin"
    requested_at: AwareDatetime
    raw: RawPosition
