"""Subscriber configuration: the ``[sync]`` table of the config file plus
``MAILPULSE_SYNC__*`` environment overrides (nested keys joined by ``__``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import (
    SettingsConfigDict,
)

from ingest.settings import ConfigFileSettings
from processors.addresses import NormaliseOptions


class SyncSettings(ConfigFileSettings):
    """Everything ``mailpulse sync`` and a sender's ``SuppressionList`` read, frozen."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="MAILPULSE_SYNC__",
        env_nested_delimiter="__",
    )
    config_section: ClassVar[str] = "sync"

    bootstrap_servers: str = "127.0.0.1:9092"
    # The live topic: the processors' topic prefix plus ``suppression.commands``.
    topic_prefix: str = ""
    topic: str = "suppression.commands"
    # The subscriber's own consumer group: its committed offsets say how far the sender's
    # table is. A second sender database needs a group of its own.
    group_id: str = "mailpulse-sync"
    # sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user:pw@host/db.
    # A secret (it may hold a password): logs show it with the password masked.
    dsn: SecretStr = SecretStr("sqlite:///var/sync/suppressions.db")
    table: str = Field(default="mailpulse_suppressions", pattern=r"^[a-z_][a-z0-9_]{0,40}$")
    # At most this many records per poll, applied in one database transaction.
    batch_max_records: int = Field(default=500, ge=1, le=10_000)
    poll_timeout_ms: int = Field(default=1000, ge=10, le=60_000)
    # A progress line (applied, repeats, lag) at most this often, and once caught up.
    progress_interval_s: float = Field(default=10.0, gt=0)
    log_level: str = "info"
    # Must match the processors' ``normalise`` settings: senders' addresses are looked up
    # in the canonical form the processors key commands by.
    normalise: NormaliseOptions = NormaliseOptions()

    @property
    def topic_name(self) -> str:
        return self.topic_prefix + self.topic


def load_settings(**overrides: Any) -> SyncSettings:
    """Build the settings from file and environment; keyword overrides win (tests)."""
    return SyncSettings(**overrides)
