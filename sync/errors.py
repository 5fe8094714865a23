"""Error taxonomy of the subscriber; every error says whether a retry can help."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the subscriber raises on purpose: one line for the operator."""

    retriable: bool = False


class ConfigError(SyncError):
    """A setting is wrong (an unknown DSN scheme, a bad table name): fix it, then restart."""


class StoreUnavailable(SyncError):
    """The sender's database cannot be reached or refused the login; it may come back."""

    retriable = True


class BadCommand(SyncError):
    """A topic record is not a suppression command this version reads (a newer schema):
    the subscriber stops there rather than skip it; upgrade it, then restart."""
