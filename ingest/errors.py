"""Error taxonomy of the ingest service; every error says whether a retry can help."""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error ingest raises on purpose."""

    retriable: bool = False


class ConfigError(IngestError):
    """The configuration is invalid; fix it and restart."""


class VerificationError(IngestError):
    """The request is not authentic (or cannot be checked). Always answered 401.

    ``reason`` is a short machine-readable code (``missing_header``, ``bad_signature``,
    ``stale_timestamp``...) used in the response body and as a metric label; it never
    contains secret material or request data.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class VerificationUnavailable(VerificationError):
    """Verification could not be completed for a reason a retry can fix (the SNS signing
    certificate could not be fetched). Should be answered 503, not 401: SNS does not retry
    a 4xx, so a 401 here would drop an authentic message."""

    retriable = True


class AppendError(IngestError):
    """The broker could not make the append durable in time. Answered 503 + Retry-After."""

    retriable = True


class OverloadedError(AppendError):
    """Too many appends in flight; the request was not attempted."""
