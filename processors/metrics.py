"""Prometheus metrics of the processors (served at /metrics on the worker's web port)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class ProcessorMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.normalised = Counter(
            "mailpulse_events_normalised", "Canonical events produced", ["provider"], registry=r
        )
        self.dlq = Counter(
            "mailpulse_dlq_records", "Records sent to the DLQ", ["stage", "reason"], registry=r
        )
        self.applied = Counter(
            "mailpulse_events_applied", "Events that changed a table", ["table"], registry=r
        )
        self.duplicates = Counter(
            "mailpulse_events_duplicate",
            "Events skipped as already applied (retries and replays)",
            ["table"],
            registry=r,
        )
        self.commands = Counter(
            "mailpulse_suppression_commands",
            "Suppression commands published and acknowledged",
            ["action"],
            registry=r,
        )
        # The whole group's lag (every worker of a generation reports the same figure:
        # take the max across workers), refreshed every ``lag_interval_s`` by the worker.
        self.lag = Gauge(
            "mailpulse_consumer_lag",
            "Records of an input topic the consumer group has not committed yet",
            ["group", "topic"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "mailpulse_webhook_deliveries",
            "Outbound webhook deliveries created (one per event and subscribed endpoint)",
            ["type"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "mailpulse_webhook_attempts",
            "Outbound webhook delivery attempts, by what the delivery became",
            ["outcome"],
            registry=r,
        )
        self.webhook_ended = Counter(
            "mailpulse_webhook_deliveries_ended",
            "Outbound webhook deliveries ended (delivered or failed)",
            ["status"],
            registry=r,
        )
