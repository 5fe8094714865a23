"""What every mapper shares: the ``Outcome`` it returns and small pure helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from processors.addresses import NormaliseOptions
from processors.errors import NormaliseError
from schemas.common import EventType
from schemas.events import BounceDetail
from schemas.raw import RawWebhook

CORRELATION_KEY = "correlation_id"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One mapped event, before the fields every event shares are filled in.

    ``recipient`` is as the provider wrote it; ``normalise`` normalises it (dedupe keys
    are built from the raw value, so they do not depend on ``NormaliseOptions``).
    """

    dedupe_key: str
    type: EventType
    recipient: str
    message_id: str | None
    occurred_at: datetime | None
    bounce: BounceDetail | None = None
    url: str | None = None
    correlation_id: str | None = None
    sending_domain: str | None = None


Mapper = Callable[[RawWebhook, NormaliseOptions], Sequence[Outcome]]


def body_hash(raw: RawWebhook) -> str:
    """The dedupe key of a record whose provider gives no event id."""
    return "sha256:" + hashlib.sha256(raw.body).hexdigest()


def bounce_type(hard: bool | None, options: NormaliseOptions) -> tuple[EventType, bool]:
    """The canonical bounce type; the flag says whether policy chose (class unknown)."""
    if hard is None:
        return ("bounced.hard" if options.unclassified_bounce == "hard" else "bounced.soft"), True
    return ("bounced.hard" if hard else "bounced.soft"), False


def from_unix(ts: float) -> datetime:
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        raise NormaliseError("invalid_payload", "timestamp out of range") from None


def require_recipient(address: str | None, where: str) -> str:
    if not address:
        raise NormaliseError("missing_recipient", where)
    return address


def unknown_type(provider: str, kind: str | None) -> NormaliseError:
    # Truncated: the type is provider input, and a DLQ reason detail is not a dump.
    return NormaliseError("unknown_event_type", f"{provider} event type {str(kind)[:60]!r}")


def correlation(metadata: Mapping[str, object] | None) -> str | None:
    """Our correlation id where a provider echoes our metadata (a value or a list of them)."""
    if not metadata:
        return None
    value = metadata.get(CORRELATION_KEY)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def joined(*parts: str | None) -> str | None:
    """``"Permanent/General"`` from the parts a provider gives; None when it gives none."""
    return "/".join(p for p in parts if p) or None


def header(raw: RawWebhook, *names: str) -> str | None:
    """The first of ``names`` (lower-case) among the HTTP headers ingest kept."""
    for name in names:
        value = raw.http_headers.get(name)
        if value:
            return value
    return None
