"""Processor configuration: the ``[processors]`` table of the config file plus
``MAILPULSE_PROCESSORS__*`` environment overrides (nested keys joined by ``__``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    SettingsConfigDict,
)

from ingest.settings import ConfigFileSettings
from processors.normalise import NormaliseOptions
from processors.policy import Policy
from schemas.topics import durability_config


class TopicSettings(BaseModel):
    """Topic names (all prefixed by ``prefix``) and partition counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = ""
    raw: str = "webhooks.raw"
    email_events: str = "email.events"
    message_events: str = "message.events"
    dlq: str = "webhooks.dlq"
    suppression: str = "suppression.commands"
    # Compacted; records which generation of state is live (processors/generations.py).
    control: str = "mailpulse.control"
    # Compacted, one partition: the outbound webhook endpoints (processors/webhooks/).
    # Shared by every generation, like the control topic: subscriptions are not derived
    # from the raw log, so a rebuild neither replays nor loses them.
    webhook_subscriptions: str = "webhooks.subscriptions"
    # Partitions of email.events, message.events, suppression.commands and the tables.
    partitions: int = Field(default=6, ge=1)
    # Must equal ingest's kafka.raw_partitions: whichever service starts first creates it.
    raw_partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # min.insync.replicas of every topic the processors create, changelogs included
    # (None: the broker's default). Must not exceed replication_factor.
    min_insync_replicas: int | None = Field(default=None, ge=1)

    def durability(self) -> dict[str, str]:
        """Topic configs for ``min_insync_replicas`` (Faust's changelogs take them too)."""
        return durability_config(self.min_insync_replicas)

    def name(self, topic: str) -> str:
        return self.prefix + topic


class WebhookSettings(BaseModel):
    """Outbound webhooks (``[processors.webhooks]``): the manage API, the SSRF guard, the
    delivery schedule (README "Outbound webhooks")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Creates the delivery agent and scheduler (a shadow generation never delivers).
    enabled: bool = True
    # Bearer token of /api/webhooks/manage (None or blank: the manage API answers 403).
    manage_token: SecretStr | None = None
    # Plain http:// endpoints (local development only).
    allow_http: bool = False
    # Endpoints resolving to loopback, private, link-local (cloud metadata), shared,
    # multicast or reserved addresses: refused at registration and at delivery unless true.
    allow_private_addresses: bool = False
    # Delivery attempt: connect and total timeouts, the response bytes read (at most).
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    max_response_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)
    # Retries: attempt n+1 waits uniform(0, min(cap, base * 2**(n-1))) seconds ("full
    # jitter"), at least a 429/503's Retry-After (up to retry_after_max_s); a delivery
    # whose next attempt would start later than max_age_s after its first is failed.
    retry_base_s: float = Field(default=5.0, gt=0)
    retry_cap_s: float = Field(default=3600.0, gt=0)
    retry_after_max_s: float = Field(default=3600.0, ge=0)
    max_age_s: float = Field(default=24 * 3600.0, gt=0)
    # Attempts in flight at once per endpoint, per worker: what one endpoint can hold of
    # a worker, however slow it is.
    endpoint_concurrency: int = Field(default=8, ge=1, le=256)
    # Ended deliveries stay in the log this long after their event, then are deleted.
    log_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    attempts_kept: int = Field(default=10, ge=1, le=100)
    # How often the scheduler looks for partitions, inactive endpoints and old records.
    tick_s: float = Field(default=1.0, gt=0, le=60)
    prune_every_s: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _retention_covers_age(self) -> WebhookSettings:
        if self.log_retention_s < self.max_age_s:
            raise ValueError("log_retention_s must be at least max_age_s")
        return self


class ProcessorSettings(ConfigFileSettings):
    """Everything the Faust workers read, frozen after start."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="MAILPULSE_PROCESSORS__",
        env_nested_delimiter="__",
    )
    config_section: ClassVar[str] = "processors"

    app_id: str = "mailpulse-processors"
    # A generation is one set of state: consumer group, changelog topics and data dir.
    # A rebuild builds a new generation from the earliest raw offset beside the live one.
    generation: str = "g1"
    # Set by the worker at start from the control topic: a generation that is not the
    # active one publishes its commands to ``suppression.commands.<generation>``.
    shadow: bool = False
    bootstrap_servers: str = "127.0.0.1:9092"
    topics: TopicSettings = TopicSettings()
    datadir: Path = Path("var/processors")
    store: str = "rocksdb://"
    # The local RocksDB store holds only what the changelog acknowledged (runtime/store.py),
    # so a restarted worker keeps it and reads only the changelog past it. True: start
    # from the changelog alone (a full restore, time growing with the table).
    wipe_local_state_on_start: bool = False
    # Upper bound of one table record (state or index entry). Records are bounded by
    # design; one that is not (a policy with huge limits, a bug) goes to the DLQ as
    # ``state_too_large`` rather than reach the broker's limit (1 MB) and crash the worker.
    max_record_bytes: int = Field(default=64 * 1024, ge=256, le=900 * 1024)
    # How long the producer waits to fill a batch: fewer, larger produce requests.
    producer_linger_s: float = Field(default=0.005, ge=0, le=1)
    # The normaliser sends the canonical events of its raw records in one batch record
    # per hop partition (processors/hops.py, runtime/batcher.py): at once when it has
    # caught up with the raw partition; under a backlog once this many raw records are
    # pending, or this many bytes of events, or this long after the last send, whichever
    # is first. Larger batches cost less per event; the linger bounds what a backlog adds
    # to an event's latency.
    hop_batch_linger_s: float = Field(default=0.05, gt=0, le=1)
    hop_batch_max_records: int = Field(default=500, ge=1, le=100_000)
    hop_batch_max_bytes: int = Field(default=256 * 1024, ge=1024, le=900 * 1024)
    # After the app crashes, how long Faust may take to stop before the process exits
    # with status 1 anyway: a crashed app can hang in its own shutdown, and a supervisor
    # restarts only a process that has exited (processors/__main__.py).
    crash_exit_grace_s: float = Field(default=10.0, gt=0, le=300)
    # Static group membership (Kafka's group.instance.id, KIP-345): a name unique to this
    # worker within its group and kept across its restarts (a host or pod name); the
    # consumer's id is this name plus the worker's web address (app.group_instance_id).
    # A worker restarted under the same name and address before its session times out
    # (10 s, app.py) takes its old place: it gets its own partitions back and the rest
    # of the group does not rebalance at all. Without a name it joins as a new member,
    # and that rebalance waits until the dead member's session expires, every worker
    # stopped meanwhile. The price of a name: the worker does not leave the group when it
    # stops, even on SIGTERM, so if it does not come back its partitions wait the session
    # timeout before another worker takes them over (as after a kill -9 in either mode).
    # None: dynamic membership.
    instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    # How often a worker refreshes ``mailpulse_consumer_lag`` (its group's lag, asked of
    # the broker: one offsets request per refresh).
    lag_interval_s: float = Field(default=15.0, ge=1, le=600)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    log_level: str = "info"
    admin_token: SecretStr | None = None
    webhooks: WebhookSettings = WebhookSettings()
    policy: Policy = Policy()
    normalise: NormaliseOptions = NormaliseOptions()

    @property
    def group_id(self) -> str:
        return f"{self.app_id}-{self.generation}"


def load_settings(**overrides: Any) -> ProcessorSettings:
    """Build the settings from file and environment; keyword overrides win (tests)."""
    return ProcessorSettings(**overrides)
