"""Ingest configuration: one TOML file plus ``MAILPULSE_INGEST__*`` environment overrides.

Precedence (highest first): environment, the TOML file named by ``MAILPULSE_CONFIG``
(default ``config/dev.toml``), defaults below. Nested keys use ``__`` in the environment,
e.g. ``MAILPULSE_INGEST__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`` or
``MAILPULSE_INGEST__SOURCES__NEXUS__SECRETS='["s1","s2"]'``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from schemas.common import ProviderKind

DEFAULT_CONFIG = Path("config/dev.toml")


def read_config_section(section: str) -> dict[str, Any]:
    """The ``[section]`` table of the TOML file named by MAILPULSE_CONFIG ({} if absent)."""
    path = Path(os.environ.get("MAILPULSE_CONFIG", str(DEFAULT_CONFIG)))
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        table = tomllib.load(f).get(section, {})
    return dict(table) if isinstance(table, dict) else {}


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    raw_topic: str = "webhooks.raw"
    raw_partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # min.insync.replicas of the raw topic when ingest creates it (None: the broker's
    # default). With acks=all an append is durable on at least this many replicas.
    min_insync_replicas: int | None = Field(default=None, ge=1)
    # How long an append may wait for acks=all before the request is answered 503.
    append_timeout_s: float = Field(default=5.0, gt=0)
    # Appends waiting for the broker at once; past it requests get 503 immediately.
    max_in_flight: int = Field(default=2000, ge=1)
    linger_ms: int = Field(default=2, ge=0)

    def topic(self, name: str) -> str:
        return self.topic_prefix + name


class SourceSettings(BaseModel):
    """One provider account posting to ``/webhooks/{name}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ProviderKind
    # More than one secret means rotation: any one valid secret accepts. Meaning per kind:
    # HMAC schemes: the shared key; Standard Webhooks: "whsec_..."; SendGrid: the public
    # key (base64 DER); Postmark: "user:password" for HTTP basic auth; SES: unused.
    secrets: tuple[SecretStr, ...] = ()
    # Standard Webhooks and Mailgun: accepted clock skew of the signed timestamp.
    tolerance_s: int = Field(default=300, ge=1)
    # Postmark: optional allowlist of client addresses / networks (CIDR).
    allowed_ips: tuple[str, ...] = ()
    # Mandrill signs the webhook URL as registered at Mandrill; behind a proxy the URL
    # we see differs, so it can be set explicitly.
    public_url: str | None = None
    # SES/SNS: topic ARNs accepted; empty accepts any topic with a valid signature.
    topic_arns: tuple[str, ...] = ()


class ConfigFileSettings(BaseSettings):
    """Settings read from keyword arguments, then the environment, then the config file's
    ``config_section`` table (``read_config_section``), in that order of precedence."""

    config_section: ClassVar[str]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        section = read_config_section(cls.config_section)
        return (init_settings, env_settings, InitSettingsSource(settings_cls, section))


class IngestSettings(ConfigFileSettings):
    """Everything the ingest service reads, frozen after start."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="MAILPULSE_INGEST__",
        env_nested_delimiter="__",
    )
    config_section: ClassVar[str] = "ingest"

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # Seconds a provider is told to wait (Retry-After) when we answer 503.
    retry_after_s: int = Field(default=5, ge=1)
    shutdown_grace_s: float = Field(default=30.0, gt=0)
    log_level: str = "info"
    kafka: KafkaSettings = KafkaSettings()
    sources: dict[str, SourceSettings] = Field(default_factory=dict)


def load_settings(**overrides: Any) -> IngestSettings:
    """Build the settings from file and environment; keyword overrides win (tests)."""
    return IngestSettings(**overrides)
