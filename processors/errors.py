"""Error taxonomy of the processors; every error says whether a retry can help."""

from __future__ import annotations

from typing import Literal

NormaliseReason = Literal[
    "invalid_json",  # the body (or a JSON document inside it) is not JSON
    "invalid_payload",  # JSON (or a form) of the wrong shape, or a value out of range
    "unknown_event_type",  # an event type the provider's mapping does not know
    "unknown_provider",  # the raw record names a provider kind we have no mapping for
    "missing_recipient",  # an event that must name a recipient does not
    "invalid_recipient",  # the recipient is not an email address
    "ambiguous_recipient",  # a negative outcome for a message with several recipients
]


class ProcessorError(Exception):
    """Base of every error the processors raise on purpose."""

    retriable: bool = False


class NormaliseError(ProcessorError):
    """A raw webhook cannot be parsed or mapped; it goes to the DLQ with ``reason``.

    Not retriable: the same bytes fail the same way until a mapper is fixed, then the
    DLQ record is re-driven. ``detail`` names fields and types, never payload values
    (they may hold personal data).
    """

    retriable = False

    def __init__(self, reason: NormaliseReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: NormaliseReason = reason
        self.detail = detail
